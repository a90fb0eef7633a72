"""Mail that comes back (DESIGN 8): replies, bounces and complaints, however they arrive.

    mailbox.py   the values a polled mailbox yields (state, batches) and MailboxError
    imap.py      the IMAP adapter the poller in `dripper run` drives (imapclient)
    intake.py    one path for every inbound message: classify, record once, apply

Nothing is imported here, so reading a message from a file or a webhook never loads the
IMAP library.
"""

"""A reply or a bounce to an email dripper wrote to the file transport, as a customer's mail
client or a mail server would send it: what `make demo` pipes into `dripper inbound`, and
a quick way to try a set-up before real mail comes back.

    python -m dripper.inbound.samples reply ada@example.com | dripper inbound
    python -m dripper.inbound.samples bounce linus@example.com | dripper inbound
"""

from __future__ import annotations

import argparse
import email
import email.policy
import secrets
import sys
from email.message import EmailMessage
from email.utils import format_datetime, localtime, parseaddr
from pathlib import Path

from dripper.config import Config, find_config, load_config
from dripper.errors import DripperError


def newest_to(config: Config, address: str) -> EmailMessage:
    folder = Path(config.transport.path)
    found: list[tuple[float, EmailMessage]] = []
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if address.lower() in str(message["To"]).lower():
            found.append((path.stat().st_mtime, message))
    if not found:
        raise DripperError(f"no email to {address} in {folder}")
    return max(found, key=lambda pair: pair[0])[1]


def reply(original: EmailMessage, text: str) -> bytes:
    """The customer's answer: In-Reply-To and References name the email, as mail clients do."""
    answer = EmailMessage()
    answer["From"] = str(original["To"])
    answer["To"] = str(original.get("Reply-To") or original["From"])
    answer["Subject"] = f"Re: {original['Subject']}"
    answer["Date"] = str(original["Date"])
    answer["Message-ID"] = f"<{secrets.token_hex(12)}@mail.example.com>"
    answer["In-Reply-To"] = str(original["Message-ID"])
    answer["References"] = str(original["Message-ID"])
    body = original.get_body(("plain",))
    lines = (body.get_content() if body else "").splitlines()[:6]
    quoted = "".join(f"> {line}\n" for line in lines)
    answer.set_content(f"{text}\n\nOn {original['Date']}, {original['From']} wrote:\n{quoted}")
    return answer.as_bytes()


def bounce(original: EmailMessage, status: str = "5.1.1") -> bytes:
    """An RFC 3464 report as Postfix writes it: the address does not exist."""
    recipient = parseaddr(str(original["To"]))[1]
    boundary = secrets.token_hex(8)
    returned = "".join(
        f"{name}: {original[name]}\r\n" for name in ("From", "To", "Subject", "Date", "Message-ID")
    )
    text = (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {parseaddr(str(original['From']))[1]}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(localtime())}\r\n"
        f"Message-ID: <{secrets.token_hex(12)}@mx.example.net>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.example.net.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{recipient}>: host mx.example.net said: 550 {status} User unknown\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: User unknown\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{returned}\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dripper.inbound.samples", description=__doc__
    )
    parser.add_argument("kind", choices=["reply", "bounce"])
    parser.add_argument("address", help="the customer whose newest email it answers")
    parser.add_argument("--config", type=Path)
    parser.add_argument(
        "--text", default="Thank you! Could you grind the next bag for a French press?"
    )
    args = parser.parse_args(argv)
    try:
        original = newest_to(load_config(find_config(args.config)), args.address)
    except DripperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = reply(original, args.text) if args.kind == "reply" else bounce(original)
    sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How whatever imaplib, imapclient or the socket raise becomes one MailboxError line:
which kind of fault it is, and words a person can act on.

imaplib hides the cause: a socket timeout or reset during a command comes out as its
`abort` ("command: FETCH => timed out"), with the original error only on the exception
chain, so the chain is what `classify` reads.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from typing import TYPE_CHECKING

from dripper.inbound.mailbox import MailboxFault

if TYPE_CHECKING:
    from dripper.inbound.imap_settings import ImapSettings

# A bytes repr at the end of a message, as imaplib words the server's answer: b'...'.
_BYTES_REPR = re.compile(r"""(|.*[\s:(])b(['"])(.*)\2""")
_FAILED_PREFIX = re.compile(r"^[a-z]+ failed: ", re.IGNORECASE)
# Dovecot's "(0.001 + 0.000 secs)" and OpenSSL's "(_ssl.c:1006)".
_NOISE = re.compile(r"\s*\((?:\d+\.\d+(?: \+ \d+\.\d+)* secs|_ssl\.c:\d+)\)")


def classify(exc: BaseException, *, connecting: bool) -> tuple[MailboxFault, str]:
    """Which kind of trouble an exception is. imaplib wraps socket errors in its `abort`,
    so the cause is looked for along the chain."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    reason = describe(exc)
    if any(isinstance(e, TimeoutError) for e in chain):
        return MailboxFault.TIMEOUT, reason
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        tls = next(e for e in chain if isinstance(e, ssl.SSLError | ssl.CertificateError))
        return MailboxFault.TLS, describe(tls)
    if isinstance(exc, imaplib.IMAP4.abort):
        return MailboxFault.DROPPED, reason
    if isinstance(exc, imaplib.IMAP4.error):
        return MailboxFault.SERVER, reason
    return (MailboxFault.UNREACHABLE if connecting else MailboxFault.DROPPED), reason


def explain(
    fault: MailboxFault, settings: ImapSettings, doing: str, reason: str, key: str | None
) -> str:
    """The one line for a fault: what happened at which server, and what to do. `key` is
    the [replies] setting naming the folder involved, if any."""
    where = settings.where
    if fault is MailboxFault.TIMEOUT:
        return (
            f"the IMAP server {where} did not answer within {settings.timeout:g}s while "
            f"{doing}: it is down or overloaded; the next poll tries again"
        )
    if fault is MailboxFault.TLS:
        return (
            f"TLS with the IMAP server {where} failed while {doing}: {reason}; check [replies] "
            'security ("tls" for port 993, "starttls" for 143) and that the server\'s '
            f"certificate is valid for {settings.host} and trusted here"
        )
    if fault is MailboxFault.UNREACHABLE:
        return (
            f"cannot connect to the IMAP server {where}: {reason}; check [replies] imap_host "
            "and imap_port, and that the server is up"
        )
    if fault is MailboxFault.DROPPED:
        return (
            f"the connection to the IMAP server {where} was cut while {doing} ({reason}); "
            "nothing is lost: the next poll resumes after the last recorded message"
        )
    hint = f"; check [replies] {key}" if key else ""
    return f"the IMAP server {where} refused {doing}: {reason}{hint}"


def describe(exc: BaseException) -> str:
    """An exception as a short clause. imaplib quotes the server's words as a bytes repr,
    imapclient prefixes "<command> failed: ", Dovecot and OpenSSL append timings and source
    lines: all dropped."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    quoted = _BYTES_REPR.fullmatch(text)
    if quoted:
        text = quoted.group(1) + quoted.group(3)
    text = _NOISE.sub("", _FAILED_PREFIX.sub("", text))
    return text.strip().rstrip(".") or type(exc).__name__

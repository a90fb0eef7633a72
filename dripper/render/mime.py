"""An email as bytes: multipart/alternative, every header of DESIGN 6, CRLF only.

Built by hand rather than through `email.message.EmailMessage`, whose header folding and
body encoding cost ~4 ms an email (DESIGN 11). The rules kept here:

- header values never contain CR, LF or NUL (header injection): `HeaderError`;
- non-ASCII (and anything that looks like an encoded word) goes out as RFC 2047
  `=?utf-8?b?...?=` words of at most 75 characters, folded onto continuation lines;
- no line, header or body, reaches 998 octets: bodies are base64 (HTML: ~30 KB encodes in
  ~50 us in C) or quoted-printable (text: readable in the raw source), lines of 76.

Tests parse the result back with the stdlib parser (policy=default) to prove it.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr

from dripper.render.errors import HeaderError

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_ATOM_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_MAX_LINE = 78
_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> 72-char encoded word


@dataclass(frozen=True)
class Address:
    """A mailbox as it goes in a header: display name (any Unicode) and address."""

    name: str
    email: str

    @classmethod
    def parse(cls, value: str, what: str) -> Address:
        check_header_value(what, value)
        name, email = parseaddr(value)
        if "@" not in email:
            raise HeaderError(f"{what}: {value!r} is not an email address")
        return cls(name, email)

    def header(self) -> str:
        """`Name <local@domain>`, the name quoted or RFC 2047-encoded as needed."""
        check_header_value("address", self.name)
        check_header_value("address", self.email)
        local, _, domain = self.email.rpartition("@")
        if not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        # A non-ASCII local part stays UTF-8 (RFC 6532): it needs an SMTPUTF8 server.
        mailbox = f"{local}@{domain}"
        if not self.name:
            return mailbox
        return f"{display_name(self.name)} <{mailbox}>"


def check_header_value(name: str, value: str) -> str:
    if _FORBIDDEN.search(value):
        raise HeaderError(
            f"{name} contains a line break: refused, it could forge headers ({value[:60]!r})"
        )
    return value


def display_name(name: str) -> str:
    if not name.isascii() or "=?" in name:
        return encode_words(name)
    if _ATOM_TEXT.fullmatch(name) and not name.startswith(" "):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_words(text: str) -> str:
    """RFC 2047 base64 encoded words, split on character boundaries, folded by spaces
    (whitespace between encoded words is dropped by decoders, so nothing is added)."""
    words: list[str] = []
    chunk = b""
    for ch in text:
        data = ch.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(chunk.decode("utf-8"))
    return "\r\n ".join(
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    )


def unstructured(name: str, value: str) -> str:
    """A folded `Name: value` line for free text (Subject)."""
    check_header_value(name, value)
    if not value.isascii() or "=?" in value or any(len(w) > 900 for w in value.split(" ")):
        return f"{name}: {encode_words(value)}"
    line = f"{name}: {value}"
    if len(line) <= _MAX_LINE:
        return line
    # Fold at spaces: the CRLF goes before an existing space, which unfolding restores.
    out: list[str] = []
    current = f"{name}:"
    for word in value.split(" "):
        if word and len(current) + 1 + len(word) > _MAX_LINE and current not in ("", f"{name}:"):
            out.append(current)
            current = ""
        current += " " + word
    out.append(current)
    return "\r\n".join(out)


def list_header(name: str, items: Sequence[str]) -> str:
    """`Name: <a>, <b>` folded after each comma (List-Unsubscribe)."""
    for item in items:
        check_header_value(name, item)
        if ">" in item or "<" in item or " " in item:
            raise HeaderError(f"{name}: {item!r} is not a usable URL")
    return f"{name}: " + ",\r\n ".join(f"<{item}>" for item in items)


def quoted_printable(text: str) -> bytes:
    """Text as quoted-printable with CRLF line ends (soft breaks at 76 columns)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


_line_getters: dict[int, Callable[[bytes], tuple[bytes, ...]]] = {}


def base64_lines(text: str) -> bytes:
    """Base64 in 76-character lines. The cutting is one `itemgetter` of slices, made once
    per line count: a C loop, about twice as fast as slicing in Python."""
    raw = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    count = (len(raw) + 75) // 76
    if count < 2:
        return raw
    getter = _line_getters.get(count)
    if getter is None:
        if len(_line_getters) > 512:
            _line_getters.clear()
        getter = _line_getters[count] = operator.itemgetter(
            *[slice(i, i + 76) for i in range(0, count * 76, 76)]
        )
    return b"\r\n".join(getter(raw))


_last_date: tuple[datetime, str] | None = None


def _date(moment: datetime) -> str:
    """RFC 5322 date; a batch of emails shares its `now`, so the last one is remembered."""
    global _last_date
    last = _last_date
    if last is not None and last[0] == moment and last[0].tzinfo is moment.tzinfo:
        return last[1]
    text = format_datetime(moment)
    _last_date = (moment, text)
    return text


@dataclass(frozen=True)
class Headers:
    """The header block that does not depend on the bodies, already folded."""

    lines: tuple[str, ...]

    def value(self, name: str) -> str | None:
        prefix = name.lower() + ":"
        for line in self.lines:
            if line.lower().startswith(prefix):
                return line[len(prefix) :].replace("\r\n", "").strip()
        return None


def build_headers(
    *,
    sender: Address,
    recipient: Address,
    subject: str,
    date: datetime,
    message_id: str,
    reply_to: Address | None,
    unsubscribe: Sequence[str],
    extra: Sequence[tuple[str, str]] = (),
) -> Headers:
    check_header_value("Message-ID", message_id)
    if date.tzinfo is None:
        raise ValueError("the Date of an email needs an aware datetime")
    lines = [
        f"From: {sender.header()}",
        f"To: {recipient.header()}",
        unstructured("Subject", subject),
        f"Date: {_date(date)}",
        f"Message-ID: <{message_id}>",
    ]
    if reply_to is not None:
        lines.append(f"Reply-To: {reply_to.header()}")
    if unsubscribe:  # none on a notice that belongs to no list (a signup's confirmation)
        lines.append(list_header("List-Unsubscribe", unsubscribe))
        lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    for name, value in extra:
        lines.append(unstructured(name, value))
    lines.append("MIME-Version: 1.0")
    return Headers(tuple(lines))


def assemble(headers: Headers, boundary: str, text: str, html: str) -> bytes:
    """The whole message. `boundary` must be unique to the message; it contains "=_",
    which neither base64 nor quoted-printable output can contain, so it can never
    collide with a body line."""
    head = "\r\n".join(headers.lines).encode("utf-8")
    b = boundary.encode("ascii")
    return b"".join(
        (
            head,
            b'\r\nContent-Type: multipart/alternative; boundary="',
            b,
            b'"\r\n\r\n--',
            b,
            b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            quoted_printable(text),
            b"\r\n--",
            b,
            b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            base64_lines(html),
            b"\r\n--",
            b,
            b"--\r\n",
        )
    )

"""Guarded reading of a parsed message: headers, parts, text. Every function here returns
something usable for any input and raises nothing; the bounds keep each one linear.

Headers are read with `raw_items()`, which hands back what the message says without
running the structured header parser (that parser is where hostile headers have raised),
and are decoded here with the lenient `email.utils` and `email.header` functions.
"""

from __future__ import annotations

import codecs
import contextlib
import email.header
import email.utils
import re
from dataclasses import dataclass, field
from email.message import Message

Fields = dict[str, list[str]]  # lower-cased header name -> its values, in order

_MAX_VALUES = 20  # values kept per header name: a thousand To headers are one attack, not mail
_MAX_VALUE = 8_000  # characters kept of one header value
_MAX_PARTS = 200
_MAX_DEPTH = 12
_MAX_DECODE = 512 * 1024  # bytes of one text part decoded
_MAX_BLOCK_LINES = 300
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NEWLINES = re.compile(r"[\r\n]+")
_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]{0,75})[ \t]*:[ \t]*(.*)")
_ID = re.compile(r"<([^<>\s]{1,250})>")
_BARE_ID = re.compile(r"[^<>\s@]{1,200}@[^<>\s@]{1,200}")
_ADDRESS = re.compile(r"[^\s<>\"(),;:@]{1,64}@[^\s<>\"(),;:@]{1,255}")
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")
_PARAM = re.compile(r';\s*([A-Za-z0-9_.-]{1,40})\s*=\s*(?:"([^"]{0,200})"|([^\s;"]{1,200}))')
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)


@dataclass
class Parts:
    """The parts of a message that matter, in document order."""

    plain: list[Message] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)
    delivery_status: list[Message] = field(default_factory=list)
    feedback: list[Message] = field(default_factory=list)
    returned: list[Message] = field(default_factory=list)  # message/rfc822 and header parts
    report_type: str = ""  # the report-type of the first multipart/report, lower-cased


def walk(msg: Message, problems: list[str]) -> Parts:
    """The message's parts, depth first, without recursion and within bounds. A message
    inside a message (message/rfc822) is collected, never entered: in a report it is our
    returned email, whose body must not be read as the report's."""
    found = Parts()
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > _MAX_PARTS:
            problems.append(f"more than {_MAX_PARTS} MIME parts: the rest was not read")
            break
        ctype = content_type(part)
        if ctype in _DSN_TYPES:
            found.delivery_status.append(part)
        elif ctype == "message/feedback-report":
            found.feedback.append(part)
        elif ctype in _RETURNED_TYPES:
            found.returned.append(part)
        elif ctype.startswith("multipart/") or _children(part):
            if ctype == "multipart/report" and not found.report_type:
                found.report_type = _param(part, "content-type", "report-type")
            children = _children(part)
            if not children:  # a boundary that never comes: the body is still text
                found.plain.append(part)
            elif depth >= _MAX_DEPTH:
                problems.append(f"MIME nested deeper than {_MAX_DEPTH}: the rest was not read")
            else:
                stack.extend((child, depth + 1) for child in reversed(children))
        elif _attachment(part):
            continue
        elif ctype == "text/html":
            found.html.append(part)
        elif ctype == "text/plain":
            found.plain.append(part)
    return found


def content_type(part: Message) -> str:
    """The part's media type, read from the raw header: the parser's structured reading
    of Content-Type costs more than the rest of the walk, and says the same thing.
    Missing or malformed: text/plain (RFC 2045)."""
    value = _raw_header(part, "content-type").split(";", 1)[0].strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "text/plain"


def _param(part: Message, header: str, name: str) -> str:
    """A parameter of a raw header (`charset`, `report-type`), lower-cased; "" if none."""
    for found in _PARAM.finditer(_raw_header(part, header)):
        if found.group(1).lower() == name:
            return (found.group(2) or found.group(3) or "").strip().lower()
    return ""


def _raw_header(part: Message, name: str) -> str:
    try:
        for key, value in part.raw_items():
            if str(key).lower() == name:
                return clean(str(value))
    except Exception:
        return ""
    return ""


def _children(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def _attachment(part: Message) -> bool:
    disposition = _raw_header(part, "content-disposition").split(";", 1)[0]
    return disposition.strip().lower() == "attachment"


def text_of(part: Message) -> str:
    """The decoded text of a leaf part (or of a multipart whose boundary never came),
    bounded; bytes that do not fit the declared charset are replaced, never fatal."""
    data: bytes = b""
    try:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            data = payload
        else:
            raw = part.get_payload()
            if isinstance(raw, str):
                data = raw.encode("ascii", "surrogateescape")
    except Exception:
        return ""
    data = data[:_MAX_DECODE]
    charset = _charset(part)
    try:
        return data.decode(charset, "replace")
    except Exception:  # a charset that names a bytes codec ("base64") or raises on decode
        return data.decode("utf-8", "replace")


def _charset(part: Message) -> str:
    charset = _param(part, "content-type", "charset") or "utf-8"
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError):
        return "utf-8"
    # us-ascii is what a part says when it never thought about it; utf-8 reads it the same
    # and also reads the 8-bit text that clients send while still declaring us-ascii.
    return "utf-8" if charset in {"us-ascii", "ascii"} else charset


def message_headers(msg: Message) -> Fields:
    """The message's own header fields, unfolded and decoded to text, bounded."""
    fields: Fields = {}
    try:
        items = list(msg.raw_items())
    except Exception:
        return fields
    for name, value in items:
        values = fields.setdefault(str(name).strip().lower(), [])
        if len(values) < _MAX_VALUES:
            values.append(clean(str(value)))
    return fields


def clean(value: str) -> str:
    """One header value: unfolded, 8-bit bytes read as UTF-8 (the parser kept them as
    surrogates), bounded."""
    value = _NEWLINES.sub("", _FOLD.sub("", value[: _MAX_VALUE * 2]))
    with contextlib.suppress(UnicodeError):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value[:_MAX_VALUE].strip()


def first(fields: Fields, name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; an unknown charset or a broken word leaves the
    text as written."""
    try:
        pieces = email.header.decode_header(value)
    except Exception:
        return value
    out: list[str] = []
    for chunk, charset in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        if charset is None:  # unencoded text, which decode_header hands back this way
            try:
                out.append(chunk.decode("raw-unicode-escape"))
            except Exception:
                out.append(chunk.decode("utf-8", "replace"))
            continue
        try:
            out.append(chunk.decode(charset, "replace"))
        except Exception:
            out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)


def addresses(fields: Fields, *names: str) -> list[str]:
    """The addresses in these header fields, lower-cased, in order."""
    values = [v[:2000] for name in names for v in fields.get(name, [])]
    if not values:
        return []
    found: list[str] = []
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:
        pairs = []
    for _name, address in pairs:
        address = address.strip().strip("<>").strip().lower()
        if "@" in address and len(address) <= 320 and not any(c.isspace() for c in address):
            found.append(address)
    if not found:  # a header getaddresses cannot take apart may still hold an address
        found = [m.group(0).lower() for v in values for m in _ADDRESS.finditer(v)]
    return found


def message_id(value: str | None) -> str | None:
    """`<abc@acme.test>` -> `abc@acme.test`; None when there is no id."""
    if not value:
        return None
    found = _ID.search(value)
    if found:
        return found.group(1)
    bare = _BARE_ID.search(value)
    return bare.group(0) if bare else None


def message_ids(values: list[str], *, bare: bool = False) -> tuple[str, ...]:
    """Every `<id>` in these values, in order, once each. With `bare`, a value without
    angle brackets still gives its `local@domain` (some clients write In-Reply-To so)."""
    found: list[str] = []
    for value in values:
        ids = _ID.findall(value)
        if not ids and bare:
            ids = _BARE_ID.findall(value)[:1]
        found.extend(ids)
    return tuple(dict.fromkeys(found))


def field_blocks(part: Message) -> list[Fields]:
    """The header-like blocks of a message/delivery-status or message/feedback-report
    part: as the parser split them, or read from its text when it did not."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        blocks = [message_headers(p) for p in payload[:60] if isinstance(p, Message)]
        if any(blocks):
            return [b for b in blocks if b]
    text = text_of(part).replace("\r\n", "\n")
    blocks = [header_block(chunk, skip_first=False) for chunk in re.split(r"\n[ \t]*\n", text)]
    return [b for b in blocks[:60] if b]


def header_block(text: str, *, skip_first: bool = True) -> Fields:
    """A block of `Name: value` lines read from text, as returned headers are quoted in a
    bounce ("------ This is a copy of the message, including all the headers. ------").
    With `skip_first`, the first line (that banner) is skipped. It ends at the first blank
    line after a field, or at a line that is no field."""
    lines = text.replace("\r\n", "\n").split("\n", _MAX_BLOCK_LINES + 1)[:_MAX_BLOCK_LINES]
    if skip_first:
        lines = lines[1:]
    fields: Fields = {}
    last: list[str] | None = None
    for line in lines:
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last is not None:
            last[-1] = (last[-1] + " " + line.strip())[:_MAX_VALUE]
            continue
        found = _FIELD.fullmatch(line.rstrip())
        if found is None:
            if fields:
                break
            continue
        last = fields.setdefault(found.group(1).lower(), [])
        if len(last) < _MAX_VALUES:
            last.append(found.group(2).strip()[:_MAX_VALUE])
        else:
            last = [""]  # continuation lines of a dropped value go nowhere
    return fields

"""Phase one of reading inbound mail: raw RFC 5322 bytes in, `Inbound` facts out.

It never raises, whatever the bytes: every read of a header or a part is guarded, a
message the standard parser cannot take is parsed again with the lenient compat32 policy,
and what could not be read is listed in `Inbound.problems`. The caller bounds the size;
in here the MIME walk, the headers kept and the text decoded are bounded again, so no
message costs more than linear time. No I/O, no clock.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import re
from email.message import Message
from email.parser import BytesParser

from flufl.bounce import all_failures

from dripper.engine import inbound_words as words
from dripper.engine.inbound_facts import BounceFacts, Inbound, Severity
from dripper.engine.inbound_mime import (
    Fields,
    Parts,
    addresses,
    decode_words,
    first,
    header_block,
    message_headers,
    message_id,
    message_ids,
    text_of,
    walk,
)
from dripper.engine.inbound_reports import (
    Returned,
    delivery_report,
    feedback_report,
    returned_message,
)

MAX_TEXT = 32_000  # characters kept of the reply's own text, and of its quoted text
_MAX_NOTICE = 16_000  # characters of a bounce's own words that are searched
_MANY_BOUNDARIES = 1000  # boundary-looking lines ("\n--") before the lenient parser is used
_MAX_REFERENCES = 20  # the newest References kept: enough for any thread we are in
_AUTO_HEADERS = {  # RFC 3834 predecessors that say "I am an auto-reply" by being present
    "x-autoreply": "X-Autoreply",
    "x-autorespond": "X-Autorespond",
    "x-autoresponder": "X-Autoresponder",
    "x-autoreply-from": "X-AutoReply-From",
    "x-mail-autoreply": "X-Mail-Autoreply",
}
_AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post")
_UNSUBSCRIBE_SUBJECT = re.compile(r"\s*unsubscribe\s+([a-z0-9]{8,64})\s*", re.IGNORECASE)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?", re.IGNORECASE)


def parse_inbound(raw: bytes, *, return_path: str | None = None) -> Inbound:
    """The facts of one raw message. `return_path` is `[bounces] return_path`; with it,
    `bounces+<delivery>@domain` anywhere in the envelope gives `Inbound.verp_ids`."""
    try:
        return _parse(bytes(raw), return_path)
    except Exception as error:  # the last line of defence: a message never crashes a caller
        return Inbound(problems=(f"unreadable message ({type(error).__name__})",))


def _parse(raw: bytes, return_path: str | None) -> Inbound:
    problems: list[str] = []
    msg = _message(raw, problems)
    headers = message_headers(msg)
    parts = walk(msg, problems)
    problems.extend(_defects(msg))

    display, sender = _from(headers)
    subject = " ".join(decode_words(first(headers, "subject") or "").split())[:1000]
    envelope_from = _envelope_from(headers)
    recipients = tuple(
        dict.fromkeys(
            addresses(
                headers,
                "to",
                "cc",
                "delivered-to",
                "x-original-to",
                "envelope-to",
                "x-envelope-to",
            )
        )
    )
    returned = returned_message(parts.returned)
    report, per_message = delivery_report(parts.delivery_status, returned)
    feedback = feedback_report(parts.feedback, returned, parts.report_type)
    text = _first_text(parts)
    bounce = None
    if report is None and feedback is None:
        bounce = _bounce(raw, headers, sender, display, subject, parts.report_type, text, returned)

    verp_texts = [
        *recipients,
        *(found.group(1) for v in headers.get("received", [])[:10] for found in _fors(v)),
        *per_message,
        *returned.return_paths,
    ]
    if feedback is not None and feedback.original_mail_from:
        verp_texts.append(feedback.original_mail_from)
    own, quoted = words.split_quoted(text[: MAX_TEXT * 2])
    unsubscribe = _UNSUBSCRIBE_SUBJECT.fullmatch(subject)
    return Inbound(
        message_id=message_id(first(headers, "message-id")),
        sender=sender,
        envelope_from=envelope_from,
        subject=subject,
        recipients=recipients,
        in_reply_to=message_ids(headers.get("in-reply-to", []), bare=True)[:5],
        references=message_ids(headers.get("references", []))[-_MAX_REFERENCES:],
        verp_ids=_verp_ids(return_path, verp_texts),
        unsubscribe_id=unsubscribe.group(1).lower() if unsubscribe else None,
        report=report,
        feedback=feedback,
        bounce=bounce,
        auto_reply=_auto_markers(headers, sender, envelope_from, subject),
        mailing_list=any(headers.get(name) for name in _LIST_HEADERS),
        text=own[:MAX_TEXT],
        quoted=quoted[:MAX_TEXT],
        problems=tuple(problems[:20]),
    )


def _message(raw: bytes, problems: list[str]) -> Message:
    """The parsed message: the standard policy first, then the lenient compat32 (which
    does no structured header parsing), then its headers alone. A message of thousands of
    parts goes to compat32 directly: the standard policy parses every part's headers at
    some 150 microseconds each, and such a message is an attack, not mail."""
    policies: tuple[email.policy.Policy, ...] = (email.policy.default, email.policy.compat32)
    if raw.count(b"\n--") > _MANY_BOUNDARIES:
        problems.append(f"more than {_MANY_BOUNDARIES} MIME boundaries: read leniently")
        policies = (email.policy.compat32,)
    for policy in policies:
        try:
            return BytesParser(policy=policy).parsebytes(raw)
        except Exception as error:  # nesting a thousand deep raises RecursionError, and more
            problems.append(f"MIME parser ({policy.__class__.__name__}): {type(error).__name__}")
    try:  # the headers alone still say who wrote and what it answers
        return BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    except Exception:
        return Message()


def _defects(msg: Message) -> list[str]:
    try:
        return [f"MIME defect: {type(defect).__name__}" for defect in msg.defects[:5]]
    except Exception:
        return []


def _from(headers: Fields) -> tuple[str, str | None]:
    """(display name, address) of From."""
    value = first(headers, "from")
    if value is None:
        return "", None
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        pairs = []
    name = pairs[0][0] if pairs else ""
    found = addresses({"from": [value]}, "from")
    return decode_words(name)[:200], (found[0] if found else None)


def _envelope_from(headers: Fields) -> str | None:
    """Return-Path as the delivering MTA wrote it: "" for the null sender (`<>`, and
    sendmail's `<MAILER-DAEMON>`), None when there is none."""
    value = first(headers, "return-path")
    if value is None:
        return None
    inner = value.strip()
    bracketed = re.search(r"<([^<>]*)>", inner)
    address = (bracketed.group(1) if bracketed else inner).strip().lower()
    return address if "@" in address else ""


def _fors(value: str) -> list[re.Match[str]]:
    return list(_RECEIVED_FOR.finditer(value[:2000]))


@functools.lru_cache(maxsize=8)
def _verp_pattern(return_path: str) -> re.Pattern[str] | None:
    """`bounces@bounce.acme.test` -> a pattern for `bounces+<delivery>@bounce.acme.test`,
    local part and domain matched case-insensitively."""
    address = return_path.strip().strip("<>").strip()
    if "@" not in address:
        return None
    local, domain = address.rsplit("@", 1)
    return re.compile(
        rf"(?<![\w.+-]){re.escape(local)}\+([a-z0-9]{{8,64}})@{re.escape(domain)}(?![\w.-])",
        re.IGNORECASE,
    )


def _verp_ids(return_path: str | None, texts: list[str]) -> tuple[str, ...]:
    pattern = _verp_pattern(return_path) if return_path else None
    if pattern is None:
        return ()
    found = (m.group(1).lower() for text in texts for m in pattern.finditer(text[:2000]))
    return tuple(dict.fromkeys(found))


def _auto_markers(
    headers: Fields, sender: str | None, envelope_from: str | None, subject: str
) -> tuple[str, ...]:
    """Every auto-reply marker present. Deliberately not `X-Auto-Response-Suppress`: it asks
    Exchange not to auto-reply *to* a message, and Outlook and many ordinary senders set
    it on mail a person wrote (Discourse, Redmine, osTicket and sisimai dropped it)."""
    markers: list[str] = []
    for value in headers.get("auto-submitted", []):
        kind = value.split(";", 1)[0].strip().lower()
        if kind and kind != "no":  # RFC 3834: "no" is what a person's mail says
            markers.append(f"Auto-Submitted: {kind[:40]}")
    for name, title in _AUTO_HEADERS.items():
        said = first(headers, name)
        if said is not None and said.strip().lower() not in {"no", "false", "0"}:
            markers.append(f"{title}: {said.strip()[:40]}")
    for value in headers.get("precedence", []):
        kind = value.strip().lower()
        if kind in _AUTO_PRECEDENCE:
            markers.append(f"Precedence: {kind}")
    if envelope_from == "":  # RFC 3834 and RFC 5321: automatic mail goes out with MAIL FROM:<>
        markers.append("Return-Path: <>")
    if words.automated_sender(sender):
        markers.append(f"sender {sender}")
    phrase = words.auto_reply_subject(subject)
    if phrase is not None:
        markers.append(f"subject {phrase!r}")
    return tuple(markers)


def _first_text(parts: Parts) -> str:
    """The readable text of the message: its first text/plain part, else its first HTML
    part as text."""
    for part in parts.plain:
        text = text_of(part)
        if text.strip():
            return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    for part in parts.html:
        text = words.html_to_text(text_of(part)[: MAX_TEXT * 4])
        if text.strip():
            return text.replace("\x00", "")
    return ""


def _bounce(
    raw: bytes,
    headers: Fields,
    sender: str | None,
    display: str,
    subject: str,
    report_type: str,
    text: str,
    returned: Returned,
) -> BounceFacts | None:
    """The facts of a bounce without a usable RFC 3464 report, or None when the message
    does not look like a bounce at all (flufl.bounce only ever sees those: its heuristics
    would find "failed addresses" in a person's mail)."""
    failed = addresses(headers, "x-failed-recipients")
    if failed:
        why = "X-Failed-Recipients"
    elif report_type == "delivery-status":
        why = "a delivery report without readable recipients"
    elif words.bounce_sender(sender, display):
        why = f"sender {sender or display}"
    elif words.bounce_subject(subject):
        why = f"subject {subject[:60]!r}"
    else:
        return None
    cut = words.returned_start(text)
    notice = text[:cut][:_MAX_NOTICE] if cut is not None else text[:_MAX_NOTICE]
    # A message that looks like a bounce by its subject alone does not also get its
    # severity from that subject: a person's "Message not delivered?" answering our email
    # must not become a bounce on one line it wrote; its words or flufl.bounce must speak.
    by_subject = why.startswith("subject")
    severity, status, evidence = words.failure_severity(notice, "" if by_subject else subject)
    temporary, permanent = _flufl(raw) if _flufl_can_read(headers) else ([], [])
    if severity is None and (failed or permanent):
        # The words said nothing, but Exim's X-Failed-Recipients or flufl.bounce's
        # detectors (which read the formats they know) name a failed address: a final
        # failure without a code, which DESIGN 12 makes hard.
        how = "X-Failed-Recipients" if failed else "flufl.bounce"
        severity, evidence = Severity.HARD, f"{how} names a failed address"
    elif severity is None and temporary:
        severity, evidence = Severity.SOFT, "flufl.bounce: a delay warning"
    returned_id = returned.message_id
    if returned_id is None and cut is not None:
        returned_id = message_id(first(header_block(text[cut:]), "message-id"))
    return BounceFacts(
        why=why,
        permanent=tuple(dict.fromkeys((*failed, *permanent)))[:20],
        temporary=tuple(a for a in temporary if a not in permanent)[:20],
        severity=severity,
        status=status,
        evidence=evidence,
        returned_message_id=returned_id,
    )


def _flufl_can_read(headers: Fields) -> bool:
    """flufl.bounce 6 raises (and logs a traceback) on a From it cannot take apart or that
    holds 8-bit bytes; such a message gets no heuristics, rather than a log line each."""
    value = first(headers, "from")
    if value is None or not value.isascii():
        return False
    try:
        return bool(email.utils.getaddresses([value]))
    except Exception:
        return False


def _flufl(raw: bytes) -> tuple[list[str], list[str]]:
    """flufl.bounce's (temporary, permanent) addresses, lower-cased; nothing if it fails.

    It gets its own compat32 parse of the bytes: its detectors read headers again and
    again, which the standard policy re-parses on every read (five times slower on a
    bounce), and compat32 messages are what it was written for."""
    try:
        temporary, permanent = all_failures(
            BytesParser(policy=email.policy.compat32).parsebytes(raw)
        )
    except Exception:  # its heuristics raise on some broken messages; they are hints only
        return [], []

    def clean(found: frozenset[bytes]) -> list[str]:
        out = (a.decode("ascii", "replace").strip().strip("<>").lower() for a in found)
        return sorted(a for a in out if "@" in a and len(a) <= 320)

    return clean(temporary), clean(permanent)

"""Reading the reports mail systems send back: RFC 3464 delivery status notifications, RFC
5965 feedback (ARF) reports, and the copy of our message (or of its headers) they return.
Guarded like the rest of the parse: any input gives a value or None, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from dripper.engine import inbound_words as words
from dripper.engine.inbound_facts import DeliveryReport, DsnRecipient, FeedbackReport
from dripper.engine.inbound_mime import (
    Fields,
    addresses,
    field_blocks,
    first,
    header_block,
    message_headers,
    message_id,
    text_of,
)


@dataclass
class Returned:
    """What a report or a bounce returns of our message."""

    message_id: str | None = None
    return_paths: list[str] = field(default_factory=list)
    to: list[str] = field(default_factory=list)


def returned_message(parts: list[Message]) -> Returned:
    """The returned message (message/rfc822) or its headers (text/rfc822-headers)."""
    for part in parts:
        fields = _returned_fields(part)
        if fields:
            return Returned(
                message_id=message_id(first(fields, "message-id")),
                return_paths=fields.get("return-path", [])[:3],
                to=addresses(fields, "to")[:5],
            )
    return Returned()


def _returned_fields(part: Message) -> Fields:
    try:
        payload = part.get_payload()
    except Exception:
        return {}
    if isinstance(payload, list):
        inner = next((p for p in payload if isinstance(p, Message)), None)
        return message_headers(inner) if inner is not None else {}
    return header_block(text_of(part), skip_first=False)


def delivery_report(
    parts: list[Message], returned: Returned
) -> tuple[DeliveryReport | None, list[str]]:
    """The RFC 3464 report, if it has per-recipient blocks; and the per-message field values
    (X-Postfix-Sender can carry the VERP address)."""
    blocks = [block for part in parts for block in field_blocks(part)]
    recipients = [b for b in blocks if _is_recipient(b)]
    per_message = [b for b in blocks if not _is_recipient(b)]
    if not recipients:
        return None, []
    returned_id = returned.message_id
    for block in per_message:
        returned_id = returned_id or message_id(
            first(block, "x-original-message-id") or first(block, "original-message-id")
        )
    report = DeliveryReport(
        recipients=tuple(_dsn_recipient(b) for b in recipients[:50]),
        returned_message_id=returned_id,
    )
    texts = [v for block in per_message for values in block.values() for v in values[:3]]
    return report, texts[:20]


def _is_recipient(block: Fields) -> bool:
    return any(name in block for name in ("final-recipient", "action", "status"))


def _dsn_recipient(block: Fields) -> DsnRecipient:
    action = (first(block, "action") or "").strip().lower()
    diagnostic = (first(block, "diagnostic-code") or "").split(";", 1)[-1].strip()[:500]
    status = words.enhanced_status(first(block, "status") or "")
    return DsnRecipient(
        action=action.split()[0] if action else "",
        status=status or words.enhanced_status(diagnostic),
        final_recipient=_typed_address(first(block, "final-recipient")),
        original_recipient=_typed_address(first(block, "original-recipient")),
        diagnostic=" ".join(diagnostic.split()),
    )


def _typed_address(value: str | None) -> str | None:
    """`rfc822; Ada@Example.org` -> `ada@example.org`."""
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip().lower()
    return address if "@" in address and " " not in address else None


def feedback_report(
    parts: list[Message], returned: Returned, report_type: str
) -> FeedbackReport | None:
    if not parts and report_type != "feedback-report":
        return None
    fields: Fields = {}
    for part in parts:
        for block in field_blocks(part):
            for name, values in block.items():
                fields.setdefault(name, []).extend(values)
    feedback_type = (first(fields, "feedback-type") or "").strip().lower()
    mail_from = addresses(fields, "original-mail-from")
    return FeedbackReport(
        feedback_type=feedback_type.split()[0] if feedback_type else "",
        user_agent=(first(fields, "user-agent") or "").strip()[:100],
        original_rcpt_to=tuple(addresses(fields, "original-rcpt-to")[:10]),
        original_mail_from=mail_from[0] if mail_from else None,
        returned_message_id=returned.message_id,
        returned_to=tuple(a for a in returned.to if "redacted" not in a),
    )

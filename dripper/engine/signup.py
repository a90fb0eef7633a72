"""Signups (DESIGN 13), the pure part: what a posted form says (checked field by field),
and whether a pending signup's confirmation email may go out. No clock, no database: the
web route and the daemon hand in `now` and the facts they read.
"""

from __future__ import annotations

import enum
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dripper.customers.addresses import normalize_email

MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets
MAX_NAME = 100
BODY_LIMIT = 16 * 1024  # a signup's body: a form is a few hundred bytes
PER_ADDRESS = timedelta(hours=24)  # one confirmation email per address in this window
BOUNCE_MEMORY = timedelta(days=30)  # no confirmation to a mailbox that hard-bounced since


class SignupInvalid(ValueError):
    """A field of the form is wrong: `field` names it, the message says what to do."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SignupRequest:
    """A checked signup: what is stored as pending, nothing more."""

    email: str  # normalised
    first_name: str
    form: str
    topics: tuple[str, ...] | None  # None: every topic the form offers
    text_hash: str  # SHA-256 of the consent text the form showed


class SignupStatus(enum.StrEnum):
    """A pending signup's confirmation email, then the signup itself."""

    QUEUED = "queued"  # waits for the daemon's next tick
    SENT = "sent"
    LIMITED = "limited"  # no email: a limit or a recent hard bounce (the reason says)
    FAILED = "failed"  # the relay refused it for good
    CONFIRMED = "confirmed"


def consent_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_signup(
    values: Mapping[str, object],
    *,
    forms: Mapping[str, tuple[str, Sequence[str] | None]],
    topics: Sequence[str],
) -> SignupRequest:
    """The signup a form or a JSON body asks for. `forms` maps each form id to its consent
    text and offered topics (None: all of `topics`). Raises SignupInvalid for the first
    field that is wrong; nothing of a wrong signup is kept."""
    form_id = _one(values, "form") or "default"
    if form_id not in forms:
        raise SignupInvalid("form", f"no signup form {form_id[:40]!r} is configured")
    consent_text, offered = forms[form_id]
    email_text = _one(values, "email")
    if not email_text:
        raise SignupInvalid("email", "an email address is needed")
    if len(email_text) > MAX_ADDRESS:
        raise SignupInvalid("email", f"an address has at most {MAX_ADDRESS} characters")
    try:
        email = normalize_email(email_text)
    except ValueError:
        raise SignupInvalid("email", "this is not an email address") from None
    if len(email) > MAX_ADDRESS:
        raise SignupInvalid("email", f"an address has at most {MAX_ADDRESS} characters")
    name = _one(values, "first_name").strip()
    if len(name) > MAX_NAME:
        raise SignupInvalid("first_name", f"a name has at most {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name) or any(
        ch in name for ch in '<>"\\{}[]/:@'
    ):
        raise SignupInvalid("first_name", "a name is one line of letters, without markup")
    allowed = list(offered if offered is not None else topics)
    chosen = _many(values, "topics")
    picked: tuple[str, ...] | None = None
    if chosen:
        for topic in chosen:
            if topic not in allowed:
                raise SignupInvalid(
                    "topics",
                    f"{topic[:40]!r} is not a topic of this form"
                    + (f" (offered: {', '.join(allowed)})" if allowed else " (it offers none)"),
                )
        picked = tuple(dict.fromkeys(chosen))
    elif offered is not None:
        picked = tuple(offered)  # the form's topics, not topics added later
    return SignupRequest(email, name, form_id, picked, consent_hash(consent_text))


def honeypot_filled(values: Mapping[str, object], field: str) -> bool:
    """The hidden field a person never sees, filled: a bot. Answered like any signup."""
    return bool(_one(values, field).strip())


@dataclass(frozen=True)
class ConfirmationFacts:
    """What the daemon read before sending one confirmation email."""

    expires_at: datetime
    sent_to_address: int  # confirmations sent to this address in the last PER_ADDRESS
    sent_in_day: int  # confirmations sent to anyone in the last 24 hours
    hard_bounced_at: datetime | None  # the address's last hard bounce, if any


def confirmation_verdict(facts: ConfirmationFacts, *, now: datetime, max_per_day: int) -> str:
    """ "" to send, else the reason none is sent (kept on the signup)."""
    if now >= facts.expires_at:
        return "expired before it was sent"
    if facts.sent_to_address:
        return "one confirmation per address per 24 hours"
    if facts.sent_in_day >= max_per_day:
        return f"the daily cap of {max_per_day} confirmation emails was reached"
    if facts.hard_bounced_at is not None and now - facts.hard_bounced_at < BOUNCE_MEMORY:
        return "the mailbox hard-bounced in the last 30 days"
    return ""


def _one(values: Mapping[str, object], name: str) -> str:
    value = values.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    if not isinstance(value, str):
        raise SignupInvalid(name, "expected text")
    return value


def _many(values: Mapping[str, object], name: str) -> list[str]:
    value = values.get(name)
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items) or len(items) > 50:
        raise SignupInvalid(name, "expected a list of topic names")
    return [str(item) for item in items if item]

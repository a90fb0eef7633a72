"""What an inbound message says, as plain values: the output of `parse_inbound`, the input
of `classify` (see `dripper.engine.inbound` for both and for the rules).

Everything here is a fact read from the message, never a decision: "Status: 5.1.1", "the
sender's local part is mailer-daemon", "the returned message's Message-ID is <...>". The
store is asked about the ids and addresses listed by `Inbound.referenced_ids()`,
`Inbound.delivery_ids()` and `Inbound.addresses()`; nothing else in here needs it. Those
lists are bounded whatever the message holds: only ids of the shape dripper makes, at most
`MAX_LOOKUPS` of each (a stranger's message decides how many ids it carries, and each one
would cost a look-up).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Ids of each kind (Message-IDs, delivery ids) the store is asked about for one message,
# the most specific first. A real reply names one or two of ours; a bounce one.
MAX_LOOKUPS = 10
# The shape of what `dripper.tokens.new_message_id` makes: a delivery id (the tokens'
# `[a-z0-9]{8,64}`) at a domain, lower-case, within the outbox column's 255 characters.
DELIVERY_ID = re.compile(r"[a-z0-9]{8,64}")
_OUR_MESSAGE_ID = re.compile(r"[a-z0-9]{8,64}@[a-z0-9](?:[a-z0-9.-]{0,188}[a-z0-9])?")


def is_our_message_id(message_id: str) -> bool:
    """Shaped like a Message-ID dripper generates (never a database id); anything else
    cannot be ours and is never looked up."""
    return _OUR_MESSAGE_ID.fullmatch(message_id) is not None


class Severity(enum.StrEnum):
    """How bad a failure is for the address: permanent (hard) or temporary (soft)."""

    HARD = "hard"
    SOFT = "soft"


def severity_of_status(status: str | None) -> Severity | None:
    """RFC 3463: the class digit of an enhanced status code decides; 2.x.x is no failure."""
    if not status:
        return None
    if status[0] == "5":
        return Severity.HARD
    if status[0] == "4":
        return Severity.SOFT
    return None


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block of an RFC 3464 `message/delivery-status` part."""

    action: str = ""  # lower-cased first word: failed, delayed, delivered, relayed, expanded
    status: str | None = None  # the enhanced status code, e.g. "5.1.1"
    final_recipient: str | None = None
    original_recipient: str | None = None
    diagnostic: str = ""  # Diagnostic-Code after its type ("smtp;"), bounded

    @property
    def severity(self) -> Severity | None:
        """DESIGN 12: an Action that says failed or delayed decides. `delayed` is soft,
        whatever the Status. `failed` is hard with a 5.x.x Status or none (a 2.x.x beside
        it is no failure status: none), and soft with a 4.x.x: the message expired on a
        temporary condition, which says nothing permanent about the address. `delivered`,
        `relayed` and `expanded` are no failure. Without a known Action, the Status class."""
        by_status = severity_of_status(self.status)
        if self.action.startswith("delayed"):
            return Severity.SOFT
        if self.action.startswith(("fail", "error")):  # NTMail writes "failure", opensmtpd "error"
            return Severity.SOFT if by_status is Severity.SOFT else Severity.HARD
        if self.action.startswith(("delivered", "relayed", "expanded")):
            return None
        return by_status

    @property
    def addresses(self) -> tuple[str, ...]:
        """The address we sent to first (Original-Recipient), then where it ended up."""
        return tuple(a for a in (self.original_recipient, self.final_recipient) if a)


@dataclass(frozen=True)
class DeliveryReport:
    """An RFC 3464 delivery status notification (multipart/report; report-type=delivery-status)."""

    recipients: tuple[DsnRecipient, ...] = ()
    returned_message_id: str | None = None  # from the returned message or its headers

    @property
    def failures(self) -> tuple[DsnRecipient, ...]:
        """The blocks that report a failure, hard ones first."""
        hard = [r for r in self.recipients if r.severity is Severity.HARD]
        soft = [r for r in self.recipients if r.severity is Severity.SOFT]
        return (*hard, *soft)


@dataclass(frozen=True)
class FeedbackReport:
    """An RFC 5965 ARF report (multipart/report; report-type=feedback-report)."""

    feedback_type: str = ""  # lower-cased; "" when the report has none
    user_agent: str = ""
    original_rcpt_to: tuple[str, ...] = ()
    original_mail_from: str | None = None
    returned_message_id: str | None = None
    returned_to: tuple[str, ...] = ()  # the returned message's To (often redacted)


@dataclass(frozen=True)
class BounceFacts:
    """A message shaped like a bounce but without a usable RFC 3464 report (Exim, Yahoo,
    old Gmail, mangled reports): what flufl.bounce and the notification's wording say."""

    why: str  # what makes it look like a bounce, e.g. "X-Failed-Recipients"
    permanent: tuple[str, ...] = ()  # addresses flufl.bounce (or X-Failed-Recipients) names
    temporary: tuple[str, ...] = ()  # addresses flufl.bounce reports as only delayed
    # From the notice's words, its subject, then X-Failed-Recipients/flufl.bounce (DESIGN 12,
    # `inbound_words.failure_severity`); None: it says nothing of failing or trying.
    severity: Severity | None = None
    status: str | None = None  # the enhanced status code in the notification, if any
    evidence: str = ""  # the code or phrase that decided `severity`
    returned_message_id: str | None = None  # from the returned message or its quoted headers

    @property
    def addresses(self) -> tuple[str, ...]:
        return _unique((*self.permanent, *self.temporary))


@dataclass(frozen=True)
class Inbound:
    """The facts of one inbound message. All addresses are lower-cased; Message-IDs are
    kept as written, without angle brackets."""

    message_id: str | None = None
    sender: str | None = None  # the From address
    envelope_from: str | None = None  # Return-Path; "" is the null sender <>
    subject: str = ""
    recipients: tuple[str, ...] = ()  # To, Cc, Delivered-To, X-Original-To, (X-)Envelope-To
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()  # as written: oldest first, newest last
    verp_ids: tuple[str, ...] = ()  # delivery ids read from our VERP return path
    unsubscribe_id: str | None = None  # the delivery id of an "unsubscribe <id>" subject
    report: DeliveryReport | None = None
    feedback: FeedbackReport | None = None
    bounce: BounceFacts | None = None
    auto_reply: tuple[
        str, ...
    ] = ()  # the auto-reply markers found, e.g. "Auto-Submitted: auto-replied"
    mailing_list: bool = False  # List-Id, List-Unsubscribe or List-Post present
    text: str = ""  # the plain text the sender wrote, quoted text removed, bounded
    quoted: str = ""  # the quoted text (`> ` lines, "On ... wrote:" and what follows), bounded
    problems: tuple[str, ...] = ()  # what could not be read (the parse degrades, never raises)

    def thread_ids(self) -> tuple[str, ...]:
        """The Message-IDs this message answers, most specific first: In-Reply-To, then
        References newest first (References lists the thread oldest first)."""
        return _unique((*self.in_reply_to, *reversed(self.references)))

    def referenced_ids(self) -> tuple[str, ...]:
        """The Message-IDs the store must look up (`Known.by_message_id`): the Message-ID
        of the message a report returns, then the thread; only those shaped like ours, at
        most `MAX_LOOKUPS`."""
        returned = (
            self.report.returned_message_id if self.report else None,
            self.feedback.returned_message_id if self.feedback else None,
            self.bounce.returned_message_id if self.bounce else None,
        )
        ids = _unique((*(r for r in returned if r), *self.thread_ids()))
        return tuple(i for i in ids if is_our_message_id(i))[:MAX_LOOKUPS]

    def delivery_ids(self) -> tuple[str, ...]:
        """The delivery ids the store must look up (`Known.by_delivery_id`): the id of an
        "unsubscribe <id>" subject, then the VERP ids; at most `MAX_LOOKUPS`."""
        extra = (self.unsubscribe_id,) if self.unsubscribe_id else ()
        ids = _unique((*extra, *self.verp_ids))
        return tuple(i for i in ids if DELIVERY_ID.fullmatch(i))[:MAX_LOOKUPS]

    def addresses(self) -> tuple[str, ...]:
        """The addresses whose most recent delivery (last 30 days) the store must look up
        (`Known.by_address`): the sender alone. The recipients a report names are never
        looked up: a report that names only an address suppresses nobody (anyone can write
        one), so what we sent to that address decides nothing."""
        return (self.sender,) if self.sender else ()


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))

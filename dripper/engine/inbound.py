"""Mail that comes back (DESIGN 8): every inbound message is exactly one of seven classes.

Two pure phases, because the store must be asked about the ids and addresses a message
mentions, and the core never asks:

    inbound = parse_inbound(raw, return_path="bounces@bounce.acme.test")   # facts
    known = Known(by_message_id=..., by_delivery_id=..., by_address=...)   # the store
    verdict = classify(inbound, known, unsubscribe_mailto="unsubscribe@acme.test")

The store fills `Known` with exactly what `inbound.referenced_ids()` (Message-IDs, without
angle brackets, compared as written), `inbound.delivery_ids()` (VERP ids) and
`inbound.addresses()` (the sender, lower-cased; the most recent delivery to it in the last
30 days) list: a bounded handful of ids of our own shape. Unknown keys are simply absent.

The rules, first that applies wins (`RULES` below is this table, in this order):

  # | rule            | applies to                                | class
  --+-----------------+-------------------------------------------+-----------------------------
  1 | delivery report | an RFC 3464 report with per-recipient     | bounce_hard: Action failed
    |                 | blocks                                    |   with 5.x.x or no Status
    |                 |                                           | bounce_soft: Action delayed,
    |                 |                                           |   or failed with 4.x.x
    |                 |                                           | unmatched: no failure in it,
    |                 |                                           |   or no email of ours named
  2 | other bounce    | bounce-shaped (X-Failed-Recipients, a     | bounce_soft: still trying
    |                 | daemon sender, a bounce subject) with     | bounce_hard/soft: the code
    |                 | evidence (flufl.bounce addresses, failure | bounce_hard: it failed (no
    |                 | wording, or our VERP)                     |   code needed); see below
    |                 |                                           | unmatched: no email of ours
  3 | feedback report | an RFC 5965 ARF report                    | complaint: abuse, fraud,
    |                 |                                           |   opt-out, or no type
    |                 |                                           | unmatched: other types
    |                 |                                           |   (auth-failure, not-spam),
    |                 |                                           |   or no email of ours named
  4 | unsubscribe     | `unsubscribe_mailto` among the recipients | unsubscribe (the sender)
  5 | auto-reply      | Auto-Submitted (not "no"), X-Autoreply &  | auto_reply (never a reply,
    |                 | co., Precedence auto_reply/bulk/junk/list,|   even with our Message-ID
    |                 | Return-Path <>, daemon/no-reply senders,  |   in In-Reply-To)
    |                 | out-of-office subjects                    |
  6 | reply           | In-Reply-To/References name our Message-ID| reply, when From is the
    |                 |                                           |   address it was sent to
    |                 | else the sender had an email from us and  | reply, weak=True
    |                 | it is a person's mail (no report, bounce  |
    |                 | shape or List-Id/-Unsubscribe/-Post)      |
    |                 | else our Message-ID, From someone else    | unmatched, the mismatch
    |                 |                                           |   in its reason
  7 | (none)          | everything else                           | unmatched

Which delivery a message belongs to, first found: a Message-ID (the returned message's,
then In-Reply-To, then References newest first), then the VERP id, then (for mail that is
no report) the most recent delivery to the sender's address, which sets `Verdict.weak`.

What a report must name (rules 1-3): a Message-ID we generated and sent, or a VERP id we
issued, either found in the store. Its recipient address alone is never enough, however
recently we mailed it: anyone can write a delivery or abuse report naming any address, so
such a report is `unmatched` (recorded, nothing suppressed, nothing counted; not even as a
soft bounce, as three of them on three days would then suppress). A reply ends a
customer's sequence only when its From is the address the email it answers was sent to
(case and a `+tag` aside): a colleague answering a forwarded email, or a stranger quoting
one, is not the customer.

Hard or soft (DESIGN 12, "Bounces"): a bounce is hard when it reports a final failure, soft
when delivery is still being tried or the final failure carries a 4.x.x code. For an RFC 3464
report the Action decides (`DsnRecipient.severity`). For a non-standard notice, the first
thing its own words say (`inbound_words.failure_severity` lists the order, with examples;
the copy of our message a notice returns is never read), then X-Failed-Recipients or
flufl.bounce naming a failed address (hard; only delayed ones: soft).

Decisions worth knowing:
- A 4.x.x Status with `Action: failed` is soft: the message expired on a temporary
  condition, which says nothing permanent about the address. So is a non-standard notice
  of a final failure whose code is 4.x.x ("I'm not going to try again ... (#4.4.1)").
- A non-standard notice that says the delivery failed is hard without any code, even when
  it names a passing cause ("could not be delivered ... mailbox is full"): DESIGN 12 takes
  a 4.x.x code, not a guess from the cause's words, as what makes a final failure soft.
  tests/unit/test_bounce_policy.py runs flufl.bounce's corpus of real notices against this.
- A non-standard bounce that says nothing about failing or trying (nor does its subject or
  flufl.bounce) is soft: one ambiguous message never loses a customer, and soft-bounced
  emails in a row still suppress (`[bounces] soft_limit`).
- 5.7.x (refused by policy) is classified `bounce_hard` with its status; the listening
  service never suppresses for it (the content or our reputation, not the address).
- `X-Auto-Response-Suppress` is no auto-reply marker (Outlook sets it on people's mail).
- A forward of our email by the customer to us is a reply: the customer is talking to us
  (strong when the client kept References, otherwise weak by the sender's address).
- Mailing-list mail (List-Id, List-Unsubscribe, List-Post) from a customer is no weak reply:
  it was written to a list, not to us. With our Message-ID in In-Reply-To it is a reply.
- A mail to the unsubscribe address is an unsubscribe even when it looks automated: the
  mail client writes it when a person presses "unsubscribe" (our List-Unsubscribe mailto),
  and may mark it auto-generated. (Whatever else reaches that address is spam, and
  unsubscribing a stranger's address changes nothing.)
- An "unsubscribe <delivery>" subject (our List-Unsubscribe mailto) names the delivery only
  when that delivery went to the sender: anyone can type an id into a subject.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dripper.engine.inbound_facts import (
    BounceFacts,
    DeliveryReport,
    DsnRecipient,
    FeedbackReport,
    Inbound,
    Severity,
)
from dripper.engine.inbound_parse import MAX_TEXT, parse_inbound

__all__ = [
    "MAX_TEXT",
    "RULES",
    "BounceFacts",
    "DeliveryRef",
    "DeliveryReport",
    "DsnRecipient",
    "FeedbackReport",
    "Inbound",
    "InboundClass",
    "Known",
    "Severity",
    "Verdict",
    "classify",
    "parse_inbound",
]


class InboundClass(enum.StrEnum):
    """DESIGN 8's classes of mail that comes back; every message is exactly one."""

    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    REPLY = "reply"
    UNSUBSCRIBE = "unsubscribe"
    UNMATCHED = "unmatched"


@dataclass(frozen=True)
class DeliveryRef:
    """One email we sent, as the store knows it."""

    delivery_id: str
    message_id: str  # without angle brackets
    customer_id: int | None
    email: str  # the address it was sent to, lower-cased
    campaign: str
    step: str


@dataclass(frozen=True)
class Known:
    """What the store found for the lookups an `Inbound` lists; absent keys are unknown."""

    by_message_id: Mapping[str, DeliveryRef] = field(default_factory=dict)
    by_delivery_id: Mapping[str, DeliveryRef] = field(default_factory=dict)
    by_address: Mapping[str, DeliveryRef] = field(default_factory=dict)  # most recent, 30 days

    @classmethod
    def of(cls, deliveries: Iterable[DeliveryRef]) -> Known:
        """Every lookup answered from a list of deliveries, oldest first (so the most recent
        delivery to an address wins). The caller keeps it to the last 30 days."""
        refs = list(deliveries)
        return cls(
            by_message_id={d.message_id: d for d in refs},
            by_delivery_id={d.delivery_id: d for d in refs},
            by_address={d.email.lower(): d for d in refs},
        )


@dataclass(frozen=True)
class Verdict:
    """What `classify` decides about one message, and why."""

    kind: InboundClass
    delivery: DeliveryRef | None = None
    address: str | None = None  # bounced/complaining address; the customer's for a reply
    status: str | None = None  # the enhanced status code of a bounce, e.g. "5.1.1"
    reason: str = ""  # one line, for people
    weak: bool = False  # the delivery was found only by an address


def classify(inbound: Inbound, known: Known, *, unsubscribe_mailto: str | None = None) -> Verdict:
    """Exactly one class for a parsed message: the first rule of `RULES` that applies."""
    for _name, rule in RULES:
        verdict = rule(inbound, known, unsubscribe_mailto)
        if verdict is not None:
            return verdict
    return Verdict(InboundClass.UNMATCHED, address=inbound.sender, reason=_nothing(inbound))


# --- matching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    delivery: DeliveryRef
    how: str  # "the returned Message-ID <...>", for the reason
    weak: bool = False


def _find(
    known: Known,
    *,
    ids: Sequence[tuple[str, str]] = (),
    verp: Sequence[str] = (),
    addresses: Sequence[str] = (),
) -> _Found | None:
    """The first known of: Message-IDs (labelled), VERP ids, addresses (weak)."""
    for label, key in ids:
        ref = known.by_message_id.get(key)
        if ref is not None:
            return _Found(ref, f"{label} <{key}>")
    for key in verp:
        ref = known.by_delivery_id.get(key)
        if ref is not None:
            return _Found(ref, f"the VERP delivery id {key}")
    for key in addresses:
        ref = known.by_address.get(key)
        if ref is not None:
            return _Found(ref, f"the recent delivery to {key}", weak=True)
    return None


def _returned(message_id: str | None) -> list[tuple[str, str]]:
    return [("the returned Message-ID", message_id)] if message_id else []


def _thread(inbound: Inbound) -> list[tuple[str, str]]:
    in_reply_to = set(inbound.in_reply_to)
    return [
        ("In-Reply-To" if key in in_reply_to else "References", key) for key in inbound.thread_ids()
    ]


def _matched(kind: InboundClass, found: _Found, what: str, status: str | None = None) -> Verdict:
    return Verdict(
        kind,
        found.delivery,
        found.delivery.email,
        status,
        f"{what}; matched by {found.how}",
        found.weak,
    )


# --- the rules -------------------------------------------------------------------------------

_NAMES_NOTHING = (
    "names no email of ours (no Message-ID or VERP id we sent; an address alone is no "
    "proof): nothing suppressed"
)

Rule = Callable[[Inbound, Known, str | None], Verdict | None]


def _delivery_report(inbound: Inbound, known: Known, _mailto: str | None) -> Verdict | None:
    report = inbound.report
    if report is None:
        return None
    failures = report.failures
    if not failures:
        actions = ", ".join(sorted({r.action or "no action" for r in report.recipients}))
        return Verdict(
            InboundClass.UNMATCHED, reason=f"delivery report without a failure ({actions})"
        )
    worst = failures[0]
    hard = worst.severity is Severity.HARD
    code = worst.status or worst.action
    found = _find(
        known,
        ids=[*_returned(report.returned_message_id), *_thread(inbound)],
        verp=inbound.verp_ids,
    )
    address = next(iter(worst.addresses), None)
    if found is None:
        return Verdict(
            InboundClass.UNMATCHED,
            address=address,
            status=worst.status,
            reason=f"delivery report ({code}) for {address or 'no address'} {_NAMES_NOTHING}",
        )
    kind = InboundClass.BOUNCE_HARD if hard else InboundClass.BOUNCE_SOFT
    what = f"RFC 3464 report: {code} ({worst.action or 'no action'}) for {address}"
    return _matched(kind, found, what, worst.status)


def _other_bounce(inbound: Inbound, known: Known, _mailto: str | None) -> Verdict | None:
    bounce = inbound.bounce
    if bounce is None or not (bounce.addresses or bounce.severity or inbound.verp_ids):
        return None
    found = _find(
        known,
        ids=[*_returned(bounce.returned_message_id), *_thread(inbound)],
        verp=inbound.verp_ids,
    )
    if found is None:
        return Verdict(
            InboundClass.UNMATCHED,
            address=next(iter(bounce.addresses), None),
            status=bounce.status,
            reason=f"bounce ({bounce.why}) {_NAMES_NOTHING}",
        )
    if bounce.severity is None:
        kind, said = InboundClass.BOUNCE_SOFT, "soft: it says nothing of failing or trying"
    elif bounce.severity is Severity.HARD:
        kind, said = InboundClass.BOUNCE_HARD, f"permanent: {bounce.evidence!r}"
    else:
        kind, said = InboundClass.BOUNCE_SOFT, f"temporary: {bounce.evidence!r}"
    return _matched(kind, found, f"bounce ({bounce.why}), {said}", bounce.status)


_COMPLAINTS = frozenset({"abuse", "fraud", "opt-out", "opt-out-list", ""})


def _feedback_report(inbound: Inbound, known: Known, _mailto: str | None) -> Verdict | None:
    feedback = inbound.feedback
    if feedback is None:
        return None
    kind = feedback.feedback_type
    if kind not in _COMPLAINTS:
        return Verdict(
            InboundClass.UNMATCHED, reason=f"feedback report of type {kind}: no complaint"
        )
    addresses = (*feedback.original_rcpt_to, *feedback.returned_to)
    found = _find(known, ids=_returned(feedback.returned_message_id), verp=inbound.verp_ids)
    what = f"ARF complaint (Feedback-Type: {kind or 'none'})"
    if found is None:
        return Verdict(
            InboundClass.UNMATCHED,
            address=next(iter(addresses), None),
            reason=f"{what} {_NAMES_NOTHING}",
        )
    return _matched(InboundClass.COMPLAINT, found, what)


def _auto_reply(inbound: Inbound, known: Known, _mailto: str | None) -> Verdict | None:
    if not inbound.auto_reply:
        return None
    sender = (inbound.sender,) if inbound.sender else ()
    found = _find(known, ids=_thread(inbound), verp=inbound.verp_ids, addresses=sender)
    what = f"auto-reply ({inbound.auto_reply[0]})"
    if found is None:
        return Verdict(InboundClass.AUTO_REPLY, address=inbound.sender, reason=what)
    return _matched(InboundClass.AUTO_REPLY, found, what)


def _unsubscribe(inbound: Inbound, known: Known, mailto: str | None) -> Verdict | None:
    target = _mailto_address(mailto)
    if not target or target not in inbound.recipients:
        return None
    sender = inbound.sender
    if sender is None:
        return Verdict(InboundClass.UNMATCHED, reason=f"mail to {target} without a From address")
    named = known.by_delivery_id.get(inbound.unsubscribe_id or "")
    if named is not None and named.email.lower() == sender:
        found: _Found | None = _Found(named, f"the delivery id {named.delivery_id} in the subject")
    else:
        found = _find(known, addresses=(sender,))
    what = f"mail to {target} from {sender}"
    if found is None:
        return Verdict(InboundClass.UNSUBSCRIBE, address=sender, reason=what)
    return _matched(InboundClass.UNSUBSCRIBE, found, what)  # its address is the sender's


def _reply(inbound: Inbound, known: Known, _mailto: str | None) -> Verdict | None:
    sender = inbound.sender
    quoted = _find(known, ids=_thread(inbound))
    if quoted is not None and sender and _same_mailbox(sender, quoted.delivery.email):
        return _matched(InboundClass.REPLY, quoted, f"reply from {sender}")
    # Someone else quoting a customer's email is not that customer: never their reply. The
    # sender may still be a customer of ours writing to us (weakly, by address).
    found = _find(known, addresses=(sender,)) if sender and _from_a_person(inbound) else None
    if found is not None:
        how = "no thread headers" if quoted is None else f"it quotes {quoted.how}, not theirs"
        return _matched(InboundClass.REPLY, found, f"mail from {sender} ({how})")
    if quoted is None:
        return None
    return Verdict(
        InboundClass.UNMATCHED,
        address=sender,
        reason=f"reply from {sender or 'no sender'} quotes {quoted.how}, an email sent to "
        "another address: not that customer's reply",
    )


def _same_mailbox(sender: str, sent_to: str) -> bool:
    """The sender is the address the email went to, case and a `+tag` aside (a customer
    who signed up as ada+shop@ answers as ada@). Not a check of who really wrote: From
    can be forged; it tells a colleague or a stranger from the customer."""

    def base(address: str) -> str:
        local, _, domain = address.lower().rpartition("@")
        return f"{local.split('+', 1)[0]}@{domain}"

    return base(sender) == base(sent_to)


def _from_a_person(inbound: Inbound) -> bool:
    """Written by a person to us: no report, no bounce shape, no automation, no list."""
    return not (
        inbound.report
        or inbound.feedback
        or inbound.bounce
        or inbound.auto_reply
        or inbound.mailing_list
    )


RULES: tuple[tuple[str, Rule], ...] = (
    ("delivery report", _delivery_report),
    ("other bounce", _other_bounce),
    ("feedback report", _feedback_report),
    ("unsubscribe", _unsubscribe),
    ("auto-reply", _auto_reply),
    ("reply", _reply),
)


def _mailto_address(mailto: str | None) -> str:
    """`mailto:Unsubscribe@acme.test?subject=x` -> `unsubscribe@acme.test`."""
    if not mailto:
        return ""
    address = mailto.strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    return address.split("?", 1)[0].strip().strip("<>").lower()


def _nothing(inbound: Inbound) -> str:
    """Why an unmatched message matched nothing, in one line."""
    sender = inbound.sender or "an unknown sender"
    if inbound.thread_ids():
        return (
            f"In-Reply-To/References name no message we sent, and {sender} had no "
            "email from us in the last 30 days"
        )
    if inbound.mailing_list:
        return f"mailing-list mail from {sender}: not written to us"
    if inbound.bounce is not None:
        return f"looks like a bounce ({inbound.bounce.why}) but names no failure"
    return f"mail from {sender} answers no email of ours"

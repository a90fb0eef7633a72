"""Values the store returns besides `Customer`: plain frozen dataclasses, no database types.

Enrollment and send states are the planning core's enums (`dripper.engine.model`), so a
row read here can be handed to the planner as is.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.customers.model import Customer
from dripper.engine.model import EnrollmentStatus, SendStatus

if TYPE_CHECKING:
    from dripper.store.tasks import TaskRecord

__all__ = [
    "EnrollmentRecord",
    "EnrollmentStatus",
    "EventRecord",
    "OutboxRecord",
    "SendStatus",
    "SuppressionReason",
    "SuppressionRecord",
    "Timeline",
    "TrackingKind",
    "TrackingRecord",
    "UpsertCounts",
]


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # a hard bounce or a 5.1.x rejection: the address does not exist
    COMPLAINED = "complained"  # marked as spam (DESIGN 8: reason `complained`)
    FORGOTTEN = "forgotten"  # erased on request; only the hash remains
    MANUAL = "manual"


class TrackingKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    REPLY = "reply"
    BOUNCE = "bounce"  # a hard bounce: never delivered
    SOFT_BOUNCE = "soft_bounce"  # delayed or refused for now
    COMPLAINT = "complaint"
    ANSWER = "answer"  # a one-click answer (its `feedback` event is in events)
    REFERRAL = "referral"  # someone followed a customer's referral link


@dataclass(frozen=True)
class UpsertCounts:
    """What an import did. `suppressed` counts rows stored (or kept) unsubscribed because
    the address is suppressed or was already unsubscribed; they are also counted in
    `inserted` or `updated`."""

    inserted: int
    updated: int
    suppressed: int


@dataclass(frozen=True)
class EventRecord:
    id: int
    customer_id: int
    type: str
    at: datetime
    data: Mapping[str, Any]
    recorded_at: datetime
    ext_id: str | None = None  # the id its sender gave it (DESIGN 12)


@dataclass(frozen=True)
class EnrollmentRecord:
    id: int
    customer_id: int
    campaign: str
    occurrence: str
    enrolled_at: datetime
    event_id: int | None
    status: EnrollmentStatus
    ended_at: datetime | None
    end_reason: str | None
    converted_at: datetime | None
    converted_event_id: int | None
    attributed_step: str | None


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    enrollment_id: int
    customer_id: int
    campaign: str
    occurrence: str
    step: str
    due_at: datetime
    status: SendStatus
    variant: int | None
    message_id: str | None
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    reason: str | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TrackingRecord:
    id: int
    outbox_id: int | None
    customer_id: int | None
    kind: TrackingKind
    at: datetime
    machine: bool
    url: str | None
    user_agent: str | None
    data: Mapping[str, Any] | None


@dataclass(frozen=True)
class SuppressionRecord:
    address_hash: str
    email: str | None  # None once the customer has been forgotten
    reason: SuppressionReason
    created_at: datetime


@dataclass(frozen=True)
class ConsentChange:
    """One change of marketing, as stored and shown (`customers show --json`: "consent")."""

    at: datetime
    kind: str  # confirmed, imported, shop, api, unsubscribed, complained, bounced, topics, ...
    marketing: str  # the customer's marketing after the change
    source: str = ""  # a form id, a file, a shop, how an unsubscribe came
    ip: str | None = None
    user_agent: str | None = None
    text_hash: str | None = None  # SHA-256 of the consent text the person was shown
    topics: tuple[str, ...] | None = None  # the topics kept, where the change chose them

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "marketing": self.marketing,
            "source": self.source,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "consent_text_sha256": self.text_hash,
            "topics": None if self.topics is None else list(self.topics),
        }


@dataclass(frozen=True)
class Timeline:
    """Everything stored about one customer, oldest first, for `dripper customers show`."""

    customer: Customer
    events: tuple[EventRecord, ...]
    enrollments: tuple[EnrollmentRecord, ...]
    outbox: tuple[OutboxRecord, ...]
    tracking: tuple[TrackingRecord, ...]
    suppression: SuppressionRecord | None
    consent: tuple[ConsentChange, ...] = ()  # every change of marketing, oldest first
    notes: tuple[tuple[datetime, str, str], ...] = ()  # (when, text, source), oldest first
    tasks: tuple[TaskRecord, ...] = ()  # tasks for a person about them (DESIGN 16), oldest first

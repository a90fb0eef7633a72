"""Values the planning core reasons about. The store turns rows into these and back."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # every step sent or skipped
    CONVERTED = "converted"  # the goal was reached
    EXITED = "exited"  # an exit_on event (a reply) ended it
    CANCELLED = "cancelled"  # unsubscribed or suppressed


class SendStatus(enum.StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    AMBIGUOUS = "ambiguous"
    HELD = "held"  # a step of an enrollment held out (`holdout:`, DESIGN 17): never sent


@dataclass(frozen=True)
class EventFacts:
    """An event as the planner sees it."""

    id: int  # the stored row's: enrollments point at it
    type: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # the id its sender gave it (DESIGN 12), if any

    def as_context(self) -> dict[str, Any]:
        """`event` in expressions and templates: `event.id` is the sender's id (an order's
        `shopify:order:...`), never a database id (nothing a customer sees is one).
        `data` is read-only fields, not a dict: a shop's `items` must read as the order's
        lines, never as the dict method of that name."""
        from dripper.customers.model import Fields

        return {"id": self.key, "type": self.type, "at": self.at, "data": Fields(self.data)}


@dataclass(frozen=True)
class ActiveEnrollment:
    """An enrollment an event may end: active, or completed while its goal can still be
    reached (every step sent, the conversion window still open)."""

    id: int
    campaign: str
    occurrence: str
    enrolled_at: datetime
    event_id: int | None
    last_sent_step: str | None = None
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE


@dataclass(frozen=True)
class PlannedSend:
    step: str
    due_at: datetime
    variant: int
    skip_reason: str | None = None  # planned already too late to be worth sending
    kind: str = "email"  # or "task", "webhook" (DESIGN 16): what an unsubscribe spares


@dataclass(frozen=True)
class NewEnrollment:
    campaign: str
    occurrence: str
    enrolled_at: datetime
    event_id: int | None
    sends: tuple[PlannedSend, ...]
    held: bool = False  # held out of the campaign (`holdout:`, DESIGN 17)


@dataclass(frozen=True)
class Ending:
    """An active enrollment that an event ends."""

    enrollment_id: int
    status: EnrollmentStatus
    reason: str
    event_id: int
    attributed_step: str | None = None  # the last step sent before a conversion


@dataclass(frozen=True)
class EventDecisions:
    enroll: tuple[NewEnrollment, ...] = ()
    end: tuple[Ending, ...] = ()
    warnings: tuple[str, ...] = ()


class Verdict(enum.StrEnum):
    SEND = "send"
    SKIP = "skip"  # this step is not sent; the enrollment goes on
    DEFER = "defer"  # not now: try again at `until`
    CANCEL = "cancel"  # never: the customer or the enrollment is gone


@dataclass(frozen=True)
class SendDecision:
    verdict: Verdict
    reason: str = ""
    until: datetime | None = None

"""Enrollments and the planning side of the outbox: who is in which campaign, what an
event ends, and when the next planned send falls due.

Every function takes an open connection, so the caller decides the transaction: an event,
the enrollments it causes and their outbox rows commit together (DESIGN 7). New
enrollments and their outbox rows are written by `dripper.store.bulk`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.model import (
    ActiveEnrollment,
    Ending,
    EnrollmentStatus,
    EventFacts,
    SendStatus,
)
from dripper.store.schema import enrollments, outbox
from dripper.store.sql import chunks


def active_enrollments_of(
    conn: Connection, customer_ids: Sequence[int], *, convertible: Collection[str] = ()
) -> dict[int, list[ActiveEnrollment]]:
    """Active enrollments of many customers, each with its last step sent (attribution),
    and the completed ones of the `convertible` campaigns (those with a goal): a goal
    reached after the last step went out still converts (a referral request has one step,
    and the referral comes after it)."""
    e, o = enrollments.c, outbox.c
    last_sent = (
        sa.select(o.step)
        # The last email: what a conversion is credited to (a task has no funnel row).
        .where(o.enrollment_id == e.id, o.status == SendStatus.SENT.value, o.kind == "email")
        .order_by(o.sent_at.desc(), o.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    found: dict[int, list[ActiveEnrollment]] = defaultdict(list)
    for part in chunks(customer_ids):
        query = sa.select(
            e.customer_id,
            e.id,
            e.campaign,
            e.occurrence,
            e.enrolled_at,
            e.event_id,
            e.status,
            last_sent.label("last_sent"),
        ).where(e.customer_id.in_(part), _open(convertible))
        for r in conn.execute(query):
            found[r.customer_id].append(
                ActiveEnrollment(
                    r.id,
                    r.campaign,
                    r.occurrence,
                    r.enrolled_at,
                    r.event_id,
                    r.last_sent,
                    EnrollmentStatus(r.status),
                )
            )
    return found


def _open(convertible: Collection[str]) -> sa.ColumnElement[bool]:
    e = enrollments.c
    active = e.status == EnrollmentStatus.ACTIVE.value
    if not convertible:
        return active
    done = sa.and_(e.status == EnrollmentStatus.COMPLETED.value, e.campaign.in_(convertible))
    return sa.or_(active, done)


def active_enrollments(
    conn: Connection, customer_id: int, *, convertible: Collection[str] = ()
) -> list[ActiveEnrollment]:
    """A customer's active (and convertible completed) enrollments; see above."""
    found = active_enrollments_of(conn, [customer_id], convertible=convertible)
    return found.get(customer_id, [])


def end_enrollments(conn: Connection, endings: Iterable[Ending], *, now: datetime) -> None:
    """Convert or exit enrollments; their sends still planned are cancelled."""
    for ending in endings:
        values: dict[str, Any] = {
            "status": ending.status.value,
            "ended_at": now,
            "end_reason": ending.reason,
        }
        if ending.status is EnrollmentStatus.CONVERTED:
            values.update(
                converted_at=now,
                converted_event_id=ending.event_id,
                attributed_step=ending.attributed_step,
            )
        endable = [EnrollmentStatus.ACTIVE.value]
        if ending.status is EnrollmentStatus.CONVERTED:  # a goal reached after the last step
            endable.append(EnrollmentStatus.COMPLETED.value)
        changed = conn.execute(
            sa.update(enrollments)
            .where(enrollments.c.id == ending.enrollment_id, enrollments.c.status.in_(endable))
            .values(values)
        ).rowcount
        if changed:
            cancel_planned(
                conn, enrollment_ids=[ending.enrollment_id], reason=ending.reason, now=now
            )


def cancel_planned(
    conn: Connection, *, enrollment_ids: Sequence[int], reason: str, now: datetime
) -> int:
    return conn.execute(
        sa.update(outbox)
        .where(
            outbox.c.enrollment_id.in_(enrollment_ids),
            outbox.c.status == SendStatus.PLANNED.value,
        )
        .values(status=SendStatus.CANCELLED.value, reason=reason, updated_at=now)
    ).rowcount


def event_facts(record: Any) -> EventFacts:
    """An event row (or EventRecord) as the planner and the templates see it."""
    key = record.ext_id if hasattr(record, "ext_id") else None
    return EventFacts(record.id, record.type, record.at, dict(record.data), key)


def next_due(conn: Connection) -> datetime | None:
    """When the next planned send falls due (for the daemon's sleep and `simulate`)."""
    return conn.execute(
        sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status == SendStatus.PLANNED.value
        )
    ).scalar()

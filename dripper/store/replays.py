"""Hits that come again: a scanner replaying a one-click answer, a public referral link
opened again the same day, a person clicking the same answer twice. The first is a row;
each repeat is counted on it (`data.seen`, `data.visits`), never a row more (issue 23), so
replaying a link costs an update, not storage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.records import TrackingKind
from dripper.store.schema import tracking_events


def count_again(conn: Connection, where: sa.ColumnElement[bool], *, key: str) -> bool:
    """A repeat of a hit already stored (a scanner replaying a one-click answer, a public
    referral link visited again the same day): the first row's `data[key]` counts it, so
    a replay costs an update, never a row more (issue 23). False when there is no such
    row yet (the caller stores the first)."""
    t = tracking_events.c
    row = conn.execute(
        sa.select(t.id, t.data).where(where).order_by(t.id).limit(1).with_for_update()
    ).first()
    if row is None:
        return False
    data = dict(row.data) if isinstance(row.data, dict) else {}
    count = data.get(key)
    data[key] = (count if isinstance(count, int) else 1) + 1
    conn.execute(sa.update(tracking_events).where(t.id == row.id).values(data=data))
    return True


def replayed_answer(conn: Connection, outbox_id: int, question: str, answer: str) -> bool:
    """A scanner's visit of a one-click answer already stored for this email, question
    and answer: counted on that row (`data.seen`). False when it is the first."""
    t = tracking_events.c
    same = sa.and_(
        t.outbox_id == outbox_id,
        t.kind == TrackingKind.ANSWER.value,
        t.machine.is_(True),
        t.data["question"].as_string() == question,
        t.data["answer"].as_string() == answer,
    )
    return count_again(conn, same, key="seen")


def answered_before(conn: Connection, outbox_id: int, question: str, answer: str) -> bool:
    """This email's person gave this answer to this question before."""
    t = tracking_events.c
    rows = conn.execute(
        sa.select(t.data).where(
            t.outbox_id == outbox_id, t.kind == TrackingKind.ANSWER.value, t.machine.is_(False)
        )
    ).scalars()
    return any(
        isinstance(data, dict) and (data.get("question"), data.get("answer")) == (question, answer)
        for data in rows
    )


def referral_visit(conn: Connection, customer_id: int, *, now: datetime) -> None:
    """A visit of the customer's public referral link: one row a day, the day's further
    visits counted on it (`data.visits`; a public link may be opened without end)."""
    t = tracking_events.c
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    same_day = sa.and_(
        t.customer_id == customer_id,
        t.outbox_id.is_(None),
        t.kind == TrackingKind.REFERRAL.value,
        t.at >= day,
        t.at < day + timedelta(days=1),
    )
    if not count_again(conn, same_day, key="visits"):
        conn.execute(
            tracking_events.insert().values(
                customer_id=customer_id,
                kind=TrackingKind.REFERRAL.value,
                at=now,
                machine=False,
                data={},
            )
        )


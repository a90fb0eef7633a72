"""Tasks for a person (DESIGN 16): made once per task step that falls due, listed open
(overdue first), closed done or skipped by hand or by the digest's link, counted for
`stats`; and the morning digests, one per person and day.

Every function takes an open connection; the caller decides the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.model import Status
from dripper.errors import InputError
from dripper.store.engine import dialect_of
from dripper.store.schema import customers, task_digests, tasks
from dripper.store.sql import insert_ignoring

OPEN, DONE, SKIPPED, CANCELLED = "open", "done", "skipped", "cancelled"
CLOSED = (DONE, SKIPPED)


@dataclass(frozen=True)
class NewTask:
    """A task step's row, rendered: what `create` stores."""

    outbox_id: int
    customer_id: int
    campaign: str
    step: str
    assignee: str
    text: str
    due_at: datetime


@dataclass(frozen=True)
class TaskRecord:
    """A stored task, with the customer it is about."""

    id: int
    customer_id: int
    email: str
    name: str  # the customer's name, as the sheet shows it ("" when none)
    campaign: str
    step: str
    assignee: str
    text: str
    created_at: datetime
    due_at: datetime
    status: str
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    link_key: str
    unsubscribed: bool  # from email (the task goes on; a card is not an email)

    @property
    def who(self) -> str:
        """The customer as lists show them: `Ada Lovelace <ada@example.com>`."""
        return f"{self.name} <{self.email}>" if self.name else self.email

    def overdue(self, now: datetime) -> bool:
        return self.status == OPEN and self.due_at < now

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "due": self.due_at.isoformat(),
            "overdue": self.overdue(now),
            "assignee": self.assignee,
            "customer": self.email,
            "name": self.name,
            "text": self.text,
            "campaign": self.campaign,
            "step": self.step,
            "status": self.status,
            "created": self.created_at.isoformat(),
            "closed": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": self.closed_by,
            "note": self.note,
            "unsubscribed_from_email": self.unsubscribed,
        }


def create(conn: Connection, new: Sequence[NewTask], *, now: datetime) -> int:
    """Store the tasks; one whose outbox row has a task already (a claim taken again after
    a crash) is left alone. Returns how many were new."""
    if not new:
        return 0
    values = [
        {
            "outbox_id": t.outbox_id,
            "customer_id": t.customer_id,
            "campaign": t.campaign,
            "step": t.step,
            "assignee": t.assignee,
            "text": t.text,
            "created_at": now,
            "due_at": t.due_at,
            "status": OPEN,
            "link_key": secrets.token_hex(16),
        }
        for t in new
    ]
    stmt = insert_ignoring(dialect_of(conn), tasks, ["outbox_id"])
    return sum(
        conn.execute(stmt, [row], execution_options={"preserve_rowcount": True}).rowcount
        for row in values
    )


def _select() -> sa.Select[Any]:
    t, c = tasks.c, customers.c
    return sa.select(
        tasks, c.email, c.first_name, c.last_name, c.status.label("customer_status")
    ).join(customers, c.id == t.customer_id)


def _record(row: Any) -> TaskRecord:
    name = " ".join(p for p in (row.first_name, row.last_name) if p)
    return TaskRecord(
        id=row.id,
        customer_id=row.customer_id,
        email=row.email,
        name=name,
        campaign=row.campaign,
        step=row.step,
        assignee=row.assignee,
        text=row.text,
        created_at=row.created_at,
        due_at=row.due_at,
        status=row.status,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        note=row.note,
        link_key=row.link_key,
        unsubscribed=row.customer_status == Status.UNSUBSCRIBED.value,
    )


def listed(
    conn: Connection, *, every: bool = False, assignee: str | None = None
) -> list[TaskRecord]:
    """Open tasks (`every`: closed ones too, after them), earliest due first: the overdue
    ones lead."""
    t = tasks.c
    query = _select()
    if not every:
        query = query.where(t.status == OPEN)
    if assignee is not None:
        query = query.where(t.assignee == assignee)
    order = sa.case((t.status == OPEN, 0), else_=1)
    return [_record(r) for r in conn.execute(query.order_by(order, t.due_at, t.id))]


def of_customer(conn: Connection, customer_id: int) -> list[TaskRecord]:
    """A customer's tasks, oldest first (their sheet lists the closed ones)."""
    t = tasks.c
    query = _select().where(t.customer_id == customer_id).order_by(t.created_at, t.id)
    return [_record(r) for r in conn.execute(query)]


def by_id(conn: Connection, task_id: int) -> TaskRecord | None:
    row = conn.execute(_select().where(tasks.c.id == task_id)).first()
    return None if row is None else _record(row)


def by_link(conn: Connection, key: str) -> TaskRecord | None:
    row = conn.execute(_select().where(tasks.c.link_key == key)).first()
    return None if row is None else _record(row)


def close(
    conn: Connection,
    task_id: int,
    *,
    status: str,
    now: datetime,
    by: str,
    note: str | None = None,
) -> TaskRecord:
    """Mark an open task done or skipped (with the person's note). An unknown id, or a task
    closed already, is an InputError and changes nothing; two closing at once: one wins."""
    assert status in CLOSED
    t = tasks.c
    changed = conn.execute(
        sa.update(tasks)
        .where(t.id == task_id, t.status == OPEN)
        .values(status=status, closed_at=now, closed_by=by, note=note or None),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    found = by_id(conn, task_id)
    if found is None:
        raise InputError(f"task {task_id}: no such task (dripper tasks --all lists them)")
    if not changed:
        when = f" on {found.closed_at:%Y-%m-%d %H:%M}" if found.closed_at else ""
        raise InputError(f"task {task_id}: already {found.status}{when}; nothing changed")
    return found


def cancel_for(conn: Connection, customer_id: int, *, reason: str, now: datetime) -> int:
    """A complaint ends the customer's open tasks (DESIGN 16)."""
    t = tasks.c
    return conn.execute(
        sa.update(tasks)
        .where(t.customer_id == customer_id, t.status == OPEN)
        .values(status=CANCELLED, closed_at=now, closed_by=reason),
        execution_options={"preserve_rowcount": True},
    ).rowcount


def step_counts(conn: Connection, *, now: datetime) -> dict[tuple[str, str], dict[str, int]]:
    """Per (campaign, step): tasks created, done, skipped, overdue (open past due), open
    and cancelled: `stats`' `tasks`."""
    t = tasks.c
    query = sa.select(
        t.campaign,
        t.step,
        sa.func.count(),
        sa.func.count().filter(t.status == DONE),
        sa.func.count().filter(t.status == SKIPPED),
        sa.func.count().filter(t.status == OPEN, t.due_at < now),
        sa.func.count().filter(t.status == OPEN),
        sa.func.count().filter(t.status == CANCELLED),
    ).group_by(t.campaign, t.step)
    return {
        (campaign, step): {
            "created": created,
            "done": done,
            "skipped": skipped,
            "overdue": overdue,
            "open": open_,
            "cancelled": cancelled,
        }
        for campaign, step, created, done, skipped, overdue, open_, cancelled in conn.execute(query)
    }


def claim_digest(conn: Connection, person: str, day: str, *, now: datetime, count: int) -> bool:
    """Take the person's digest of `day`; False when it was taken (sent) already."""
    stmt = insert_ignoring(dialect_of(conn), task_digests, ["person", "day"]).values(
        person=person, day=day, sent_at=now, tasks=count
    )
    return bool(conn.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount)


def release_digest(conn: Connection, person: str, day: str) -> None:
    """A digest that could not be sent: the next pass tries again."""
    d = task_digests.c
    conn.execute(sa.delete(task_digests).where(d.person == person, d.day == day))

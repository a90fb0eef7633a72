"""Bulk writes of the planner: new enrollments and their outbox rows, thousands per
statement. Planning runs again as a no-op thanks to the unique keys (INSERT ... ON
CONFLICT DO NOTHING); the caller owns the transaction, so an enrollment and its sends
always commit together (DESIGN 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.model import EnrollmentStatus, NewEnrollment, SendStatus
from dripper.store.engine import dialect_of
from dripper.store.schema import enrollments, outbox
from dripper.store.sql import allocate_ids, chunks, insert_ignoring

# From this many rows, PostgreSQL gets them through COPY (store.copy): cheaper per row,
# dearer per statement.
COPY_FROM = 50


def save_enrollments(
    conn: Connection,
    planned: Sequence[tuple[int, NewEnrollment]],
    *,
    now: datetime,
) -> int:
    """Insert (customer id, enrollment) pairs and their outbox rows; those that exist
    already are left alone. Returns how many enrollments were new."""
    dialect = dialect_of(conn)
    created = 0
    for batch in chunks(planned, 1000):
        values = [
            {
                "customer_id": cid,
                "campaign": new.campaign,
                "occurrence": new.occurrence,
                "enrolled_at": new.enrolled_at,
                "event_id": new.event_id,
                "status": EnrollmentStatus.ACTIVE.value,
                "held": new.held,
            }
            for cid, new in batch
        ]
        ids = _insert_enrollments(conn, values)
        created += len(ids)
        sends: list[dict[str, Any]] = []
        for cid, new in batch:
            enrollment_id = ids.get((cid, new.campaign, new.occurrence))
            if enrollment_id is None:
                continue  # planned before: its rows exist
            for send in new.sends:
                skipped = send.skip_reason is not None
                sends.append(
                    {
                        "enrollment_id": enrollment_id,
                        "customer_id": cid,
                        "campaign": new.campaign,
                        "occurrence": new.occurrence,
                        "step": send.step,
                        "due_at": send.due_at,
                        "next_attempt_at": send.due_at,
                        "status": (SendStatus.SKIPPED if skipped else SendStatus.PLANNED).value,
                        "reason": send.skip_reason,
                        "variant": send.variant,
                        "kind": send.kind,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        conflict = ("customer_id", "campaign", "occurrence", "step")
        if dialect == "postgresql" and len(sends) >= COPY_FROM:
            from dripper.store import copy

            # Straight in, no staging and no ON CONFLICT: these rows belong to enrollments
            # this transaction has just created, and an enrollment's sends go (and are
            # deleted, by cascade) with it, so none of them can exist yet. Were one there,
            # the unique key would fail the whole batch loudly, never send twice.
            copy.copy_rows(conn, "outbox", tuple(sends[0]), (list(r.values()) for r in sends))
            continue
        for rows_batch in chunks(sends, 1000):
            conn.execute(insert_ignoring(dialect, outbox, conflict), rows_batch)
    return created


def _insert_enrollments(
    conn: Connection, values: list[dict[str, Any]]
) -> dict[tuple[int, str, str], int]:
    """Insert enrollments, leaving those that exist alone; the new ones' ids by key."""
    dialect = dialect_of(conn)
    stmt = insert_ignoring(dialect, enrollments, ("customer_id", "campaign", "occurrence"))
    e = enrollments.c
    inserted: Sequence[Any]  # rows with id, customer_id, campaign, occurrence
    if dialect == "postgresql" and len(values) >= COPY_FROM:
        from dripper.store import copy

        # Ids from the column default as the rows are staged (RETURNING reports them,
        # so none are allocated up front: that costs a query and ~7 us an id).
        inserted = copy.insert_staged(
            conn,
            "enrollments",
            ("id", *values[0]),
            (list(v.values()) for v in values),
            ("customer_id", "campaign", "occurrence"),
            returning=("id", "customer_id", "campaign", "occurrence"),
            defaulted=("id",),
        )
    elif dialect == "postgresql":
        # Ids up front, no RETURNING (see sql.allocate_ids); then one query tells which
        # rows went in (a conflicting one keeps its old id, so its new id is absent).
        ids = allocate_ids(conn, enrollments, len(values))
        conn.execute(stmt, [{**v, "id": i} for v, i in zip(values, ids, strict=True)])
        query = sa.select(e.id, e.customer_id, e.campaign, e.occurrence).where(e.id.in_(ids))
        inserted = conn.execute(query).all()
    else:
        inserted = conn.execute(
            stmt.returning(e.id, e.customer_id, e.campaign, e.occurrence), values
        ).all()
    return {(r.customer_id, r.campaign, r.occurrence): r.id for r in inserted}

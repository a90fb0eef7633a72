"""Bulk event ingestion: thousands of events per transaction (an order export, a backfill,
`bench/plan`). One event at a time costs a transaction and a dozen round trips; here a
batch costs a handful of statements whatever its size.

A batch holds each customer at most once (the caller splits repeats into the next batch),
so every event sees its customer exactly as it is after that event, as with
`record_event`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.model import Customer, CustomerData
from dripper.engine.model import EventFacts
from dripper.store import reads
from dripper.store.bulk import COPY_FROM
from dripper.store.customers import (
    PURCHASE,
    _insert,
    _suppressed_since,
    purchase_cents,
    purchase_update,
)
from dripper.store.engine import Dialect
from dripper.store.schema import customers, events
from dripper.store.sql import allocate_ids, chunks, insert_returning_ids
from dripper.store.store import Store


@dataclass(frozen=True)
class NewEvent:
    email: str  # normalised (lower-case) address
    type: str
    at: datetime
    data: Mapping[str, Any]


def store_events(
    conn: Connection, dialect: Dialect, batch: Sequence[NewEvent], *, now: datetime
) -> list[tuple[Customer, EventFacts]]:
    """Store a batch of events (one per customer), creating unknown customers and updating
    the purchase fields; returns each event with its customer as it is after the event."""
    cents = [purchase_cents(e.data) if e.type == PURCHASE else 0 for e in batch]  # check first
    ids = _ensure_customers(conn, dialect, [e.email for e in batch], now=now)
    purchases = [
        {"cid": ids[e.email], "cents": c, "at": e.at, "now": now}
        for e, c in zip(batch, cents, strict=True)
        if e.type == PURCHASE
    ]
    if dialect == "postgresql" and len(batch) >= COPY_FROM:
        return _store_events_copy(conn, batch, ids, cents, now)
    if purchases:
        conn.execute(purchase_update(), purchases)
    event_ids = insert_returning_ids(
        conn,
        dialect,
        events,
        [
            {
                "customer_id": ids[e.email],
                "type": e.type,
                "at": e.at,
                "data": dict(e.data),
                "recorded_at": now,
            }
            for e in batch
        ],
    )
    by_id = reads.by_ids(conn, list(ids.values()))
    return [
        (by_id[ids[e.email]], EventFacts(event_id, e.type, e.at, dict(e.data)))
        for e, event_id in zip(batch, event_ids, strict=True)
    ]


def _store_events_copy(
    conn: Connection,
    batch: Sequence[NewEvent],
    ids: Mapping[str, int],
    cents: Sequence[int],
    now: datetime,
) -> list[tuple[Customer, EventFacts]]:
    """PostgreSQL: events with ids allocated up front, copied in; purchase fields updated
    from a staged copy in one UPDATE (the SQL arithmetic of `customers.purchase_update`)."""
    from dripper.store import copy

    event_ids = allocate_ids(conn, events, len(batch))
    copy.copy_rows(
        conn,
        "events",
        ("id", "customer_id", "type", "at", "data", "recorded_at"),
        (
            (event_id, ids[e.email], e.type, e.at, dict(e.data), now)
            for event_id, e in zip(event_ids, batch, strict=True)
        ),
    )
    bought = [
        (ids[e.email], c, e.at) for e, c in zip(batch, cents, strict=True) if e.type == PURCHASE
    ]
    if bought:
        conn.execute(
            sa.text(
                "CREATE TEMP TABLE IF NOT EXISTS _stage_purchases "
                "(cid bigint, cents bigint, at timestamptz)"
            )
        )
        conn.execute(sa.text("TRUNCATE _stage_purchases"))
        copy.copy_rows(conn, "_stage_purchases", ("cid", "cents", "at"), bought)
        conn.execute(
            sa.text(
                "UPDATE customers c SET purchases = c.purchases + 1, "
                "total_spent_cents = c.total_spent_cents + p.cents, "
                "first_purchase_at = CASE WHEN c.first_purchase_at IS NULL "
                "OR c.first_purchase_at > p.at THEN p.at ELSE c.first_purchase_at END, "
                "last_purchase_at = CASE WHEN c.last_purchase_at IS NULL "
                "OR c.last_purchase_at < p.at THEN p.at ELSE c.last_purchase_at END, "
                "updated_at = :now FROM _stage_purchases p WHERE c.id = p.cid"
            ),
            {"now": now},
        )
    by_id = reads.by_ids(conn, list(ids.values()))
    return [
        (by_id[ids[e.email]], EventFacts(event_id, e.type, e.at, dict(e.data)))
        for e, event_id in zip(batch, event_ids, strict=True)
    ]


def refresh_statistics(store: Store) -> None:
    """PostgreSQL: ANALYZE the tables a bulk load grows. Their statistics lag behind a
    load of many thousand rows a second; with stale ones the planner takes the outbox
    for empty and scans it once per enrollment (a load that slows down as it goes)."""
    if store.dialect != "postgresql":
        return
    with store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE customers, events, enrollments, outbox"))
        conn.commit()


def _ensure_customers(
    conn: Connection, dialect: Dialect, emails: Sequence[str], *, now: datetime
) -> dict[str, int]:
    ids = _ids(conn, emails)
    missing = [email for email in emails if email not in ids]
    if missing:
        # New customers from events are subscribed unless the address was suppressed
        # (a forgotten or bounced address stays blocked, DESIGN 7).
        blocked = _suppressed_since(conn, missing)
        _insert(conn, dialect, [CustomerData(email=email) for email in missing], blocked, now)
        ids.update(_ids(conn, missing))
    return ids


def _ids(conn: Connection, emails: Sequence[str]) -> dict[str, int]:
    c = customers.c
    found: dict[str, int] = {}
    for part in chunks(emails):
        found.update(
            (r.email, r.id) for r in conn.execute(sa.select(c.email, c.id).where(c.email.in_(part)))
        )
    return found

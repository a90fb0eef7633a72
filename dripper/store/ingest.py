"""Bulk event ingestion: thousands of events per transaction (an order export, a backfill,
`bench/plan`). One event at a time costs a transaction and a dozen round trips; here a
batch costs a handful of statements whatever its size.

A batch holds each customer at most once (the caller splits repeats into the next batch),
so every event sees its customer exactly as it is after that event, as with
`record_event`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.model import Customer, CustomerData
from dripper.engine.model import EventFacts
from dripper.errors import StoreError
from dripper.eventdata import NewEvent as NewEvent  # the Python API names it here (README)
from dripper.money import DEFAULT_CURRENCY, PURCHASE, REFUND, Money, event_money
from dripper.store import reads
from dripper.store.bulk import COPY_FROM
from dripper.store.customers import _insert, _suppressed_since, apply_fields, field_source
from dripper.store.engine import dialect_of
from dripper.store.recording import attempt, purchase_update, refund
from dripper.store.schema import customers, events
from dripper.store.sql import allocate_ids, chunks, insert_ignoring, insert_returning_ids
from dripper.store.store import Store

MAX_ATTEMPTS = 5  # a batch met by other processes' equal ids tries again without them


@dataclass
class Stored:
    """A batch as stored: each new event with its customer right after it, how many
    were duplicates (their type and id recorded before: nothing of them is written), and
    what was worth saying (a refund larger than what was spent)."""

    events: list[tuple[Customer, EventFacts]] = field(default_factory=list)
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)
    recorded: int = 0  # events stored (history, which `events` does not list)


def store_events(
    conn: Connection,
    batch: Sequence[NewEvent],
    *,
    now: datetime,
    currency: str = DEFAULT_CURRENCY,
) -> Stored:
    """Store a batch of events (one per customer), creating unknown customers, applying
    the fields they bring and their money; duplicates are left out.

    Duplicates are found by a look-up of the batch's ids (by the unique index) and within
    the batch; the unique index is the guarantee: an id another transaction records
    between the look-up and the INSERT is left out then (see `insert_events`)."""
    money = [event_money(e.type, e.data, currency) for e in batch]  # checked first
    result, total = Stored(), len(batch)
    fresh = fresh_positions(conn, batch)
    batch = [batch[i] for i in fresh]
    money = [money[i] for i in fresh]
    if batch:
        ids, event_ids, kept = insert_fresh(conn, batch, now=now)
        batch, money = [batch[i] for i in kept], [money[i] for i in kept]
        for e in batch:
            if e.customer is not None:
                apply_fields(conn, ids[e.email], e.customer, now=now, source=field_source(e.id))
        add_purchases(conn, purchase_totals(batch, money, ids, currency), now=now)
        for e, m in zip(batch, money, strict=True):
            if e.type == REFUND and m is not None:
                said = refund(conn, ids[e.email], e.data, m, currency, now=now)
                result.warnings += [f"{e.email}: {w}" for w in said]
        by_id = reads.by_ids(conn, list({ids[e.email] for e in batch}))
        result.events = [
            (by_id[ids[e.email]], EventFacts(event_id, e.type, e.at, dict(e.data), e.id))
            for e, event_id in zip(batch, event_ids, strict=True)
        ]
    result.recorded = len(batch)
    result.duplicates = total - len(batch)
    return result


def fresh_positions(conn: Connection, batch: Sequence[NewEvent]) -> list[int]:
    """The positions of the batch's events that are not duplicates: no id, or a type
    and id neither stored nor met earlier in the batch (a look-up per type through the
    unique index)."""
    by_type: dict[str, set[str]] = {}
    for e in batch:
        if e.id is not None:
            by_type.setdefault(e.type, set()).add(e.id)
    known: set[tuple[str, str]] = set()
    ev = events.c
    for kind, keys in by_type.items():
        for part in chunks(sorted(keys)):
            query = sa.select(ev.ext_id).where(ev.type == kind, ev.ext_id.in_(part))
            known.update((kind, i) for i in conn.execute(query).scalars())
    fresh = []
    for position, e in enumerate(batch):
        if e.id is not None:
            if (e.type, e.id) in known:
                continue
            known.add((e.type, e.id))
        fresh.append(position)
    return fresh


def insert_fresh(
    conn: Connection, batch: Sequence[NewEvent], *, now: datetime
) -> tuple[dict[str, int], list[int], list[int]]:
    """The customers of a batch of events looked up as no duplicates (created if new) and
    the events inserted: the customer ids by address, the new events' ids, and their
    positions in `batch`. An event another transaction recorded meanwhile is left out,
    and what was written for it taken back: on PostgreSQL both happen in a savepoint,
    rolled back and tried again without it (see `recording.attempt`)."""
    racing = any(e.id is not None for e in batch)
    positions = list(range(len(batch)))
    for _ in range(MAX_ATTEMPTS):
        if not positions:
            return {}, [], []
        rest = [batch[i] for i in positions]
        with attempt(conn, racing) as savepoint:
            emails = list(dict.fromkeys(e.email for e in rest))
            ids = ensure_customers(conn, emails, now=now)
            inserted = insert_events(conn, rest, ids, now=now)
            if None not in inserted or savepoint is None:
                kept = [(p, i) for p, i in zip(positions, inserted, strict=True) if i is not None]
                return ids, [i for _, i in kept], [p for p, _ in kept]
            savepoint.rollback()
        positions = [p for p, i in zip(positions, inserted, strict=True) if i is not None]
    raise StoreError("other processes kept recording the same event ids as this one: run it again")


def insert_events(
    conn: Connection,
    batch: Sequence[NewEvent],
    ids: Mapping[str, int],
    *,
    now: datetime,
) -> list[int | None]:
    """The batch's events (looked up as no duplicates), their ids in order; None for one
    whose type and id another transaction recorded meanwhile (a duplicate after all: the
    unique index decides). SQLite has one writer, so the look-up was exact there.
    PostgreSQL copies a batch in with ids allocated up front (see store/copy.py), and
    when the copy meets such an id, inserts the batch again leaving that one out."""
    dialect = dialect_of(conn)
    columns = ("id", "customer_id", "type", "at", "data", "recorded_at", "ext_id")
    if dialect != "postgresql":
        found: list[int | None] = []
        found += insert_returning_ids(
            conn,
            events,
            [dict(zip(columns[1:], _row(e, ids, now)[1:], strict=True)) for e in batch],
        )
        return found
    from psycopg.errors import UniqueViolation

    from dripper.store import copy

    event_ids = allocate_ids(conn, events, len(batch))
    rows = [(i, *_row(e, ids, now)[1:]) for i, e in zip(event_ids, batch, strict=True)]
    keyed = any(e.id is not None for e in batch)
    if keyed:
        # Written in the order of their ids (the ids allocated above still follow the
        # batch's order): two transactions that share ids (two workers, two imports)
        # then wait for each other's unique-index entries in the same order, and never
        # each for the other's (a deadlock, seen between bulk workers).
        rows.sort(key=lambda r: (r[2], r[6] or ""))
    if len(batch) >= COPY_FROM:
        try:
            with conn.begin_nested() if keyed else _no_savepoint():
                copy.copy_rows(conn, "events", columns, rows)
            return list(event_ids)
        except UniqueViolation:
            staged = copy.insert_staged(
                conn, "events", columns, rows, ("type", "ext_id"), returning=("id",)
            )
            inserted = {r.id for r in staged}
    else:
        values = [dict(zip(columns, row, strict=True)) for row in rows]
        if not keyed:
            conn.execute(sa.insert(events), values)
            return list(event_ids)
        conn.execute(insert_ignoring(dialect, events, ["type", "ext_id"]), values)
        inserted = set(
            conn.execute(sa.select(events.c.id).where(events.c.id.in_(event_ids))).scalars()
        )
    return [i if i in inserted else None for i in event_ids]


def _row(e: NewEvent, ids: Mapping[str, int], now: datetime) -> tuple[Any, ...]:
    return (None, ids[e.email], e.type, e.at, dict(e.data), now, e.id)


@contextmanager
def _no_savepoint() -> Iterator[None]:
    yield


# What a customer's purchases of a batch add: (customer id, purchases, cents counted,
# the first and the last purchase's time).
Totals = tuple[int, int, int, datetime, datetime]


def purchase_totals(
    batch: Sequence[NewEvent],
    money: Sequence[Money | None],
    ids: Mapping[str, int],
    currency: str,
) -> list[Totals]:
    """The purchases of a batch summed per customer (a history batch may hold several of
    one customer's; a purchase in another currency counts as a purchase of 0)."""
    found: dict[int, list[Any]] = {}
    for e, m in zip(batch, money, strict=True):
        if e.type != PURCHASE or m is None:
            continue
        cid = ids[e.email]
        row = found.get(cid)
        if row is None:
            found[cid] = [1, m.counts_in(currency), e.at, e.at]
        else:
            row[0] += 1
            row[1] += m.counts_in(currency)
            row[2] = min(row[2], e.at)
            row[3] = max(row[3], e.at)
    return [(cid, n, cents, first, last) for cid, (n, cents, first, last) in found.items()]


def add_purchases(conn: Connection, totals: Sequence[Totals], *, now: datetime) -> None:
    """Add purchase totals to the customers' derived fields by SQL arithmetic (concurrent
    purchases of one customer lose no update). PostgreSQL stages a long list with COPY and
    updates from it in one statement."""
    dialect = dialect_of(conn)
    if not totals:
        return
    if dialect != "postgresql" or len(totals) < COPY_FROM:
        conn.execute(
            purchase_update(),
            [
                {"cid": cid, "n": n, "cents": cents, "first": first, "last": last, "now": now}
                for cid, n, cents, first, last in totals
            ],
        )
        return
    from dripper.store import copy

    conn.execute(
        sa.text(
            "CREATE TEMP TABLE IF NOT EXISTS _stage_purchases (cid bigint, n bigint, "
            "cents bigint, first timestamptz, last timestamptz)"
        )
    )
    conn.execute(sa.text("TRUNCATE _stage_purchases"))
    copy.copy_rows(conn, "_stage_purchases", ("cid", "n", "cents", "first", "last"), totals)
    conn.execute(
        sa.text(
            "UPDATE customers c SET purchases = c.purchases + p.n, "
            "total_spent_cents = c.total_spent_cents + p.cents, "
            "first_purchase_at = CASE WHEN c.first_purchase_at IS NULL "
            "OR c.first_purchase_at > p.first THEN p.first ELSE c.first_purchase_at END, "
            "last_purchase_at = CASE WHEN c.last_purchase_at IS NULL "
            "OR c.last_purchase_at < p.last THEN p.last ELSE c.last_purchase_at END, "
            "updated_at = :now FROM _stage_purchases p WHERE c.id = p.cid"
        ),
        {"now": now},
    )


def refresh_statistics(store: Store) -> None:
    """PostgreSQL: ANALYZE the tables a bulk load grows. Their statistics lag behind a
    load of many thousand rows a second; with stale ones the planner takes the outbox
    for empty and scans it once per enrollment (a load that slows down as it goes)."""
    if store.dialect != "postgresql":
        return
    with store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE customers, events, enrollments, outbox"))
        conn.commit()


def ensure_customers(conn: Connection, emails: Sequence[str], *, now: datetime) -> dict[str, int]:
    """The ids of these addresses' customers, creating those there are none of."""
    ids = _ids(conn, emails)
    missing = [email for email in emails if email not in ids]
    if missing:
        # New customers from events are subscribed unless the address was suppressed
        # (a forgotten or bounced address stays blocked, DESIGN 7).
        blocked = _suppressed_since(conn, missing)
        _insert(conn, [CustomerData(email=email) for email in missing], blocked, now)
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

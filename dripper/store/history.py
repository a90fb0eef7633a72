"""Order history (DESIGN 12: `dripper events import` without `--enroll`): past events
recorded as history. They update each customer (purchases, spend, first and last
purchase) but are never planned: no enrollment, no goal, no exit, no referral, so three
years of orders send nobody a thank-you.

Since nothing is planned, a batch may hold many events of one customer, and is written
set-wise: one look-up of the batch's ids (duplicates are left out), the new customers in
one statement, the events copied in (PostgreSQL) or inserted in one executemany, and
each customer's purchases summed into one update. Refunds, which are few and may need
their purchase's currency, are applied one by one after the purchases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from dripper.eventdata import NewEvent
from dripper.money import REFUND, event_money
from dripper.store.customers import refund
from dripper.store.engine import Dialect
from dripper.store.ingest import (
    Stored,
    add_purchases,
    fresh_positions,
    insert_fresh,
    purchase_totals,
)


def record_history(
    conn: Connection,
    dialect: Dialect,
    batch: Sequence[NewEvent],
    *,
    now: datetime,
    currency: str,
) -> Stored:
    """Store a batch of past events (in file order; any customer any number of times);
    `Stored.events` stays empty (nothing is planned), the counts and warnings are set."""
    result = Stored()
    fresh = [batch[i] for i in fresh_positions(conn, batch)]
    result.duplicates = len(batch) - len(fresh)
    if not fresh:
        return result
    ids, _event_ids, kept = insert_fresh(conn, dialect, fresh, now=now)
    fresh = [fresh[i] for i in kept]
    result.duplicates = len(batch) - len(fresh)
    money = [event_money(e.type, e.data, currency) for e in fresh]
    add_purchases(conn, dialect, purchase_totals(fresh, money, ids, currency), now=now)
    for e, m in zip(fresh, money, strict=True):
        if e.type == REFUND and m is not None:
            said = refund(conn, ids[e.email], e.data, m, currency, now=now)
            result.warnings += [f"{e.email}: {w}" for w in said]
    result.recorded = len(fresh)
    return result

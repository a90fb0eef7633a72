"""One event recorded (`dripper event`, the events API, the planner): its customer found or
made and their fields applied, a duplicate by id left out (the unique index decides, in a
savepoint on PostgreSQL), a purchase's or refund's money applied to the customer. Functions
of an open connection, so the planner writes the enrollments it causes in the same
transaction; batches of events are store/ingest.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, NestedTransaction

from dripper.customers.model import Customer, CustomerData
from dripper.money import DEFAULT_CURRENCY, PURCHASE, REFUND, Money, event_money, shown
from dripper.store import rows
from dripper.store.customers import apply_fields, ensure_customer, field_source, get_customer
from dripper.store.engine import dialect_of
from dripper.store.records import EventRecord
from dripper.store.schema import customers, events
from dripper.store.sql import insert_ignoring
from dripper.store.types import UTCDateTime


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored, its customer right after it, and what it had to say (a refund
    larger than what was spent, a refund of an order nobody knows)."""

    customer: Customer
    event: EventRecord
    warnings: tuple[str, ...] = ()


def record_event(
    conn: Connection,
    email: str,
    type_: str,
    *,
    at: datetime,
    data: Mapping[str, Any],
    now: datetime,
    ext_id: str | None = None,
    fields: CustomerData | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> RecordedEvent | None:
    """Store an event, creating the customer if new, and apply what it says: the customer
    fields it brings, a purchase's or a refund's money (SQL arithmetic, so concurrent
    purchases do not lose updates). None when `(type, ext_id)` was recorded before: a
    duplicate changes nothing at all.

    The unique index decides, not the look-up before it (which only spares a duplicate the
    work): two transactions racing with one id both reach the INSERT, and PostgreSQL lets
    the second wait for the first and then skip it."""
    dialect = dialect_of(conn)
    money = event_money(type_, data, currency)  # checked before anything is written
    if ext_id is not None and is_recorded(conn, type_, ext_id):
        return None
    with attempt(conn, ext_id is not None) as savepoint:
        cid = ensure_customer(conn, email, now=now)
        values = {
            "customer_id": cid,
            "type": type_,
            "at": at,
            "data": dict(data),
            "recorded_at": now,
            "ext_id": ext_id,
        }
        stmt = insert_ignoring(dialect, events, ["type", "ext_id"]).values(values)
        row = conn.execute(stmt.returning(events)).mappings().first()
        if row is None:  # another transaction recorded it meanwhile: a duplicate after all
            if savepoint is not None:
                savepoint.rollback()  # and the customer made for it goes again
            return None
    if fields is not None:
        apply_fields(conn, cid, fields, now=now, source=field_source(ext_id))
    warnings: list[str] = []
    if type_ == PURCHASE and money is not None:
        cents = money.counts_in(currency)
        conn.execute(
            purchase_update(),
            {"cid": cid, "n": 1, "cents": cents, "first": at, "last": at, "now": now},
        )
    elif type_ == REFUND and money is not None:
        warnings += refund(conn, cid, data, money, currency, now=now)
    customer = get_customer(conn, email)
    assert customer is not None
    return RecordedEvent(customer, rows.event(row), tuple(warnings))


@contextmanager
def attempt(conn: Connection, racing: bool) -> Iterator[NestedTransaction | None]:
    """A savepoint on PostgreSQL for writes that may turn out a duplicate (`racing`: an
    event with an id, which another transaction may be recording at the same moment):
    rolled back, it takes back what this transaction wrote for it (a new customer) and
    nothing another wrote. SQLite has one writer, so the look-up before was exact."""
    dialect = dialect_of(conn)
    if dialect != "postgresql" or not racing:
        yield None
        return
    with conn.begin_nested() as savepoint:
        yield savepoint


def is_recorded(conn: Connection, type_: str, ext_id: str) -> bool:
    """Whether an event of this type and id is stored (by the unique index)."""
    e = events.c
    query = sa.select(e.id).where(e.type == type_, e.ext_id == ext_id).limit(1)
    return conn.execute(query).first() is not None


def refund(
    conn: Connection,
    cid: int,
    data: Mapping[str, Any],
    money: Money,
    currency: str,
    *,
    now: datetime,
) -> list[str]:
    """A refund lowers the customer's `total_spent` (never below 0, and says so when it
    would have gone lower). Without a currency of its own it is in the refunded
    purchase's currency, else the company's."""
    warnings: list[str] = []
    order = data.get("order")
    if isinstance(order, str) and order:
        purchase = conn.execute(
            sa.select(events.c.data).where(
                events.c.customer_id == cid,
                events.c.type == PURCHASE,
                events.c.ext_id == order,
            )
        ).first()
        if purchase is None:
            warnings.append(
                f"refund of order {order!r}: no purchase with that id for this customer "
                "(total_spent is lowered; no campaign's revenue changes)"
            )
        elif not data.get("currency") and purchase.data.get("currency"):
            money = Money(money.cents, str(purchase.data["currency"]).upper())
    cents = money.counts_in(currency)
    if not cents:
        return warnings
    spent = conn.execute(
        sa.select(customers.c.total_spent_cents).where(customers.c.id == cid)
    ).scalar_one()
    if cents > spent:
        warnings.append(
            f"refund of {shown(cents, currency)} is more than the {shown(spent, currency)} "
            "spent: total_spent is 0"
        )
    c = customers.c
    conn.execute(
        sa.update(customers)
        .where(c.id == cid)
        .values(
            total_spent_cents=sa.case(
                (c.total_spent_cents > cents, c.total_spent_cents - cents), else_=0
            ),
            updated_at=now,
        )
    )
    return warnings


def purchase_update() -> sa.Update:
    """Purchases (binds `cid`, `n`, `cents`, `first`, `last`, `now`) added to a customer's
    derived fields by SQL arithmetic, so concurrent purchases of one customer lose no
    update; executemany for many customers at once."""
    c = customers.c
    first = sa.bindparam("first", type_=UTCDateTime())
    last = sa.bindparam("last", type_=UTCDateTime())
    return (
        sa.update(customers)
        .where(c.id == sa.bindparam("cid"))
        .values(
            purchases=c.purchases + sa.bindparam("n"),
            total_spent_cents=c.total_spent_cents + sa.bindparam("cents"),
            first_purchase_at=sa.case(
                (sa.or_(c.first_purchase_at.is_(None), c.first_purchase_at > first), first),
                else_=c.first_purchase_at,
            ),
            last_purchase_at=sa.case(
                (sa.or_(c.last_purchase_at.is_(None), c.last_purchase_at < last), last),
                else_=c.last_purchase_at,
            ),
            updated_at=sa.bindparam("now", type_=UTCDateTime()),
        )
    )


def events_for(conn: Connection, customer_id: int) -> list[EventRecord]:
    query = (
        sa.select(events)
        .where(events.c.customer_id == customer_id)
        .order_by(events.c.at, events.c.id)
    )
    return [rows.event(row) for row in conn.execute(query).mappings()]

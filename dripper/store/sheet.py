"""The customer sheet learning from what customers do: a one-click answer becomes an
attribute (`rating`), a referred purchase records who referred the buyer, referral
codes lead back to their customer, and a purchase id to its buyer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.model import Customer
from dripper.store import rows
from dripper.store.schema import customer_notes, customers, events


def set_attributes(conn: Connection, customer_id: int, values: Mapping[str, str]) -> Customer:
    """Merge `values` into the customer's attributes; returns the customer as it now is."""
    row = conn.execute(
        sa.select(customers.c.attributes).where(customers.c.id == customer_id)
    ).scalar_one()
    merged = {**dict(row or {}), **values}
    conn.execute(
        sa.update(customers).where(customers.c.id == customer_id).values(attributes=merged)
    )
    found = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings()
    return rows.customer(found.one())


def change_tags(
    conn: Connection, email: str, add: Sequence[str], remove: Sequence[str], *, now: datetime
) -> Customer | None:
    """Add and remove tags (`customers tag EMAIL +a -b`), the row locked on PostgreSQL so a
    concurrent change loses nothing; None when there is no such customer."""
    c = customers.c
    row = conn.execute(
        sa.select(c.id, c.tags).where(c.email == email).with_for_update()
    ).first()
    if row is None:
        return None
    cid, tags = row
    kept = [t for t in dict.fromkeys([*tags, *add]) if t not in set(remove)]
    if kept != list(tags):
        conn.execute(sa.update(customers).where(c.id == cid).values(tags=kept, updated_at=now))
    found = conn.execute(sa.select(customers).where(c.id == cid)).mappings()
    return rows.customer(found.one())


def by_referral_code(conn: Connection, code: str) -> Customer | None:
    """The customer whose referral code this is."""
    row = (
        conn.execute(sa.select(customers).where(customers.c.referral_code == code))
        .mappings()
        .first()
    )
    return None if row is None else rows.customer(row)


def buyer_of(conn: Connection, purchase_id: str) -> str | None:
    """The address of the customer whose purchase has this id (a shop's refund names
    its order, not always its buyer)."""
    e, c = events.c, customers.c
    return conn.execute(
        sa.select(c.email)
        .select_from(events.join(customers, c.id == e.customer_id))
        .where(e.type == "purchase", e.ext_id == purchase_id)
    ).scalar()


def add_note(conn: Connection, email: str, text: str, *, now: datetime, source: str = "") -> bool:
    """A dated note on the customer's sheet; False when there is no such customer."""
    cid = conn.execute(sa.select(customers.c.id).where(customers.c.email == email)).scalar()
    if cid is None:
        return False
    conn.execute(
        sa.insert(customer_notes).values(customer_id=cid, at=now, text=text, source=source)
    )
    return True


def notes_of(conn: Connection, customer_id: int) -> list[tuple[datetime, str, str]]:
    """A customer's notes, oldest first: (when, text, source)."""
    n = customer_notes.c
    query = (
        sa.select(n.at, n.text, n.source).where(n.customer_id == customer_id).order_by(n.at, n.id)
    )
    return [(at, text, source) for at, text, source in conn.execute(query)]

"""Customers read in bulk, for planning: thousands of rows per page or batch.

Through SQLAlchemy a customer row costs ~55 us to fetch here (psycopg's text format, then
a result processor per timestamp); on PostgreSQL a binary cursor on the same connection
costs ~22. The row still becomes a `Customer` in `rows.customer`, so both paths give the
same values: timestamps aware and in UTC, JSON columns decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.model import Customer
from dripper.store import rows
from dripper.store.schema import customers
from dripper.store.sql import chunks
from dripper.store.types import UTCDateTime

_COLUMNS = tuple(c.name for c in customers.columns)
_TIMES = tuple(c.name for c in customers.columns if isinstance(c.type, UTCDateTime))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM customers"  # noqa: S608 (column names)


def by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, Customer]:
    """The customers with these ids, by id."""
    found: dict[int, Customer] = {}
    if conn.dialect.name == "postgresql":
        for part in chunks(ids, 10_000):
            for customer in _fetch(conn, f"{_SELECT} WHERE id = ANY(%s)", (list(part),)):
                found[customer.id] = customer
        return found
    for part in chunks(ids):
        query = sa.select(customers).where(customers.c.id.in_(part))
        for r in conn.execute(query).mappings():
            found[r["id"]] = rows.customer(r)
    return found


def subscribed_page(
    conn: Connection,
    *,
    after_id: int,
    limit: int,
    changed_since: datetime | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> list[Customer]:
    """The next page of subscribed customers by id (keyset pagination: flat memory for
    any number of customers), optionally only those changed since a moment, and only
    those `where` holds for (a trigger's filter, store.customer_filter)."""
    if conn.dialect.name == "postgresql":
        sql = f"{_SELECT} WHERE id > %s AND status = 'subscribed'"
        params: tuple[Any, ...] = (after_id,)
        if changed_since is not None:
            sql += " AND updated_at >= %s"
            params += (changed_since,)
        if where is not None:
            sql += f" AND ({_literal(conn, where)})"
        return _fetch(conn, f"{sql} ORDER BY id LIMIT %s", (*params, limit))
    c = customers.c
    query = sa.select(customers).where(c.id > after_id, c.status == "subscribed")
    if changed_since is not None:
        query = query.where(c.updated_at >= changed_since)
    if where is not None:
        query = query.where(where)
    return [rows.customer(r) for r in conn.execute(query.order_by(c.id).limit(limit)).mappings()]


def _literal(conn: Connection, where: sa.ColumnElement[bool]) -> str:
    """A filter as SQL text with its constants inline (SQLAlchemy quotes them), for the
    driver-level query; `%` doubled, since psycopg reads it as a placeholder."""
    text = str(where.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    return text.replace("%", "%%")


def _fetch(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Customer]:
    """PostgreSQL: run `sql` on a binary cursor of the caller's connection (so inside its
    transaction, seeing its own writes). Errors come out as psycopg's own, not wrapped by
    SQLAlchemy; the planner lets them end the pass either way."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    out = []
    for values in found:
        row = dict(zip(_COLUMNS, values, strict=True))
        for name in _TIMES:
            value = row[name]
            if value is not None:
                row[name] = value.astimezone(UTC)
        out.append(rows.customer(row))
    return out

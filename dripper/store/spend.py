"""The best customers: each customer's spend percentile (0-100 by lifetime spend, ties
alike: `customer.spend_percentile >= 80` is the best 20%) and rank (1 = the customer who
spent most; none before a first purchase), refreshed in one set-based statement on both
databases, only when a purchase or a new customer can have changed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.engine import dialect_of
from dripper.store.schema import customers

# The percentile is percent_rank over ascending spend, floored: (rank - 1) * 100 / (n - 1)
# in integer arithmetic, because PostgreSQL's CAST rounds where SQLite's truncates and the
# two databases must agree. The least spent is 0, the most 100; equal spends get equal
# values.
# A customer who never bought has no rank: otherwise each first purchase would move the
# rank of every one of them, a write to most of the table.
_RANKED = """
SELECT id,
       CASE WHEN total_spent_cents > 0
            THEN rank() OVER (ORDER BY total_spent_cents DESC) END AS spend_rank,
       CASE WHEN count(*) OVER () > 1
            THEN (100 * (rank() OVER (ORDER BY total_spent_cents) - 1)) / (count(*) OVER () - 1)
            ELSE 0 END AS spend_percentile
FROM customers
"""

# Only rows whose values change are written (and so marked changed for the `when`
# triggers that read them).
_REFRESH = f"""
UPDATE customers SET spend_rank = r.spend_rank, spend_percentile = r.spend_percentile,
       updated_at = :now
FROM ({_RANKED}) AS r
WHERE customers.id = r.id
  AND (customers.spend_rank {{distinct}} r.spend_rank
       OR customers.spend_percentile {{distinct}} r.spend_percentile)
"""  # noqa: S608 (no input in it: `distinct` is one of two operators)


def fingerprint(conn: Connection) -> list[Any]:
    """What the ranking depends on: how many customers, their purchases and spend, and
    how many have been ranked (a new customer, or a column a migration added, is not)."""
    c = customers.c
    row = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.max(c.last_purchase_at),
            sa.func.sum(c.purchases),
            sa.func.sum(c.total_spent_cents),
            sa.func.count(c.spend_percentile),
        )
    ).one()
    return [int(row[0]), str(row[1]), int(row[2] or 0), int(row[3] or 0), int(row[4])]


# pg_try_advisory_xact_lock's key: "dripper spend" (any 64-bit number unique to this use).
_LOCK_KEY = 0x6472697070657273


def try_lock(conn: Connection) -> bool:
    """PostgreSQL: this transaction ranks, no other daemon's at the same time. The key is
    the schema's own: advisory locks are the whole database's, and two shops in two
    schemas of one database must not wait for each other."""
    query = sa.text(
        "SELECT pg_try_advisory_xact_lock(:key # hashtextextended(current_schema(), 0))"
    )
    return bool(conn.execute(query, {"key": _LOCK_KEY}).scalar_one())


def take_turn(conn: Connection, *, lock_wait: str) -> bool:
    """Whether this transaction may rank now. On PostgreSQL: no other daemon is ranking
    (else False), and a customer row another transaction holds is waited for at most
    `lock_wait` (then the statement fails: the caller tries on the next pass). SQLite's
    one writer always may."""
    if dialect_of(conn) != "postgresql":
        return True
    if not try_lock(conn):
        return False
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{lock_wait}'")
    return True


def refresh(conn: Connection, *, now: datetime) -> int:
    """Recompute every customer's percentile and rank; returns how many changed."""
    dialect = dialect_of(conn)
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    sql = sa.text(_REFRESH.format(distinct=distinct)).bindparams(
        sa.bindparam("now", now, type_=customers.c.updated_at.type)
    )
    return int(conn.execute(sql).rowcount)


@dataclass(frozen=True)
class Ranked:
    """One of the best customers, as `dripper customers top` lists them."""

    email: str
    first_name: str | None
    purchases: int
    spent_cents: int
    percentile: int
    rank: int


@dataclass(frozen=True)
class Top:
    """The best customers (percentile at least 100 - percent) and their share of revenue."""

    customers: list[Ranked]
    count: int  # all the top customers (`customers` may list only the first of them)
    everyone: int  # every customer
    top_cents: int
    total_cents: int


def top(conn: Connection, *, percent: int, limit: int) -> Top:
    """The customers whose spend percentile is at least `100 - percent`, computed now (not
    the values of the last planning pass), best first; the first `limit` of them listed."""
    c = customers.c
    ranked = (
        sa.text(_RANKED)
        .columns(
            sa.column("id", sa.Integer),
            sa.column("spend_rank", sa.Integer),
            sa.column("spend_percentile", sa.Integer),
        )
        .subquery("r")
    )
    r = ranked.c
    best = sa.and_(r.spend_percentile >= 100 - percent, c.total_spent_cents > 0)
    joined = customers.join(ranked, r.id == c.id)
    count, top_cents = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(c.total_spent_cents), 0))
        .select_from(joined)
        .where(best)
    ).one()
    everyone, total_cents = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(c.total_spent_cents), 0))
    ).one()
    rows = conn.execute(
        sa.select(
            c.email,
            c.first_name,
            c.purchases,
            c.total_spent_cents,
            r.spend_percentile,
            r.spend_rank,
        )
        .select_from(joined)
        .where(best)
        .order_by(r.spend_rank, c.email)
        .limit(limit)
    )
    listed = [Ranked(e, f, int(p), int(s), int(pc), int(rk)) for e, f, p, s, pc, rk in rows]
    return Top(listed, int(count), int(everyone), int(top_cents), int(total_cents))

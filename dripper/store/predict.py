"""What the lifetime models read and write (DESIGN 17).

`summaries`: per buyer, from their purchases at or before `now`, in one set-based query:
purchases on one calendar day (UTC) are one purchase of their summed amount; the first day
is the customer's birth, each later day a repeat purchase. It gives the repeat days `x`,
the first and last purchase days (days since 1970-01-01) and the repeat days' summed
spend (company currency; an amount in another currency counts as nothing), so Python
holds four numbers per buyer and never an event.

`save`: the values per customer (null where a value could not be computed), written as
one COPY and one UPDATE on PostgreSQL; customers without a value are cleared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.engine import dialect_of
from dripper.store.schema import customers, prediction_fits
from dripper.store.types import UTCDateTime

VALUES = ("p_alive", "expected_purchases_90d", "expected_purchases_365d", "predicted_clv_365d")

_PG = """
WITH days AS (
  SELECT customer_id, (at AT TIME ZONE 'UTC')::date AS day,
         SUM(CASE WHEN upper(COALESCE(data->>'currency', :currency)) = :currency
                  THEN COALESCE((data->>'amount')::numeric, 0) ELSE 0 END) AS spent
  FROM events
  WHERE type = 'purchase' AND at <= :now
  GROUP BY customer_id, (at AT TIME ZONE 'UTC')::date
), ranked AS (
  SELECT customer_id, day, spent,
         row_number() OVER (PARTITION BY customer_id ORDER BY day) AS n
  FROM days
)
SELECT customer_id, count(*) - 1,
       min(day) - DATE '1970-01-01', max(day) - DATE '1970-01-01',
       COALESCE(SUM(CASE WHEN n > 1 THEN spent END), 0)::float8
FROM ranked GROUP BY customer_id
"""

_PG_ARRAYS = (  # a constant: the summaries as five arrays
    "SELECT array_agg(s.a), array_agg(s.b), array_agg(s.c), array_agg(s.d), "  # noqa: S608
    f"array_agg(s.e) FROM ({_PG}) AS s(a, b, c, d, e)"
)

_SQLITE = """
WITH days AS (
  SELECT customer_id, substr(at, 1, 10) AS day,
         SUM(CASE WHEN upper(COALESCE(json_extract(data, '$.currency'), :currency)) = :currency
                  THEN COALESCE(CAST(json_extract(data, '$.amount') AS REAL), 0)
                  ELSE 0 END) AS spent
  FROM events
  WHERE type = 'purchase' AND at <= :now
  GROUP BY customer_id, substr(at, 1, 10)
), ranked AS (
  SELECT customer_id, day, spent,
         row_number() OVER (PARTITION BY customer_id ORDER BY day) AS n
  FROM days
)
SELECT customer_id, count(*) - 1,
       CAST(julianday(min(day)) - 2440587.5 AS INTEGER),
       CAST(julianday(max(day)) - 2440587.5 AS INTEGER),
       COALESCE(SUM(CASE WHEN n > 1 THEN spent END), 0)
FROM ranked GROUP BY customer_id
"""


@dataclass(frozen=True)
class Summaries:
    """Per buyer (arrays in one order): id, repeat days, first and last purchase day
    (days since 1970-01-01, UTC), and the repeat days' summed spend."""

    ids: np.ndarray
    x: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    repeat_spent: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def summaries(conn: Connection, *, now: datetime, currency: str) -> Summaries:
    values = {"currency": currency.upper()}
    if dialect_of(conn) == "postgresql":
        # The grouping sorts a few million (customer, day) rows: in memory, not on disk,
        # and no JIT compilation for one statement. The million rows come back as five
        # arrays (psycopg parses them in C), not as a million Python rows.
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")
        query = sa.text(_PG_ARRAYS).bindparams(sa.bindparam("now", now, type_=UTCDateTime))
        columns = conn.execute(query, values).one()
        if columns[0] is None:
            empty = np.zeros(0)
            return Summaries(empty.astype(np.int64), empty, empty, empty, empty)
        return Summaries(
            np.asarray(columns[0], dtype=np.int64),
            *(np.asarray(column, dtype=np.float64) for column in columns[1:]),
        )
    query = sa.text(_SQLITE).bindparams(sa.bindparam("now", now, type_=UTCDateTime))
    rows = conn.execute(query, values).all()
    if not rows:
        empty = np.zeros(0)
        return Summaries(empty.astype(np.int64), empty, empty, empty, empty)
    table = np.array(rows, dtype=np.float64)
    return Summaries(
        table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3], table[:, 4]
    )


def save(
    conn: Connection, ids: np.ndarray, values: Sequence[np.ndarray], *, others: bool = True
) -> None:
    """Each customer's four values (NaN: null); every other customer's cleared, unless
    `others` is False (the caller knows no customer outside `ids` has values: buyers
    only grow while the clock moves forward, so a customer with values is a buyer still).
    """
    rows = [
        [int(i), *(None if not np.isfinite(v) else float(v) for v in row)]
        for i, *row in zip(ids.tolist(), *(v.tolist() for v in values), strict=True)
    ]
    c = customers.c
    if dialect_of(conn) == "postgresql":
        from dripper.store import copy

        conn.execute(
            sa.text(
                "CREATE TEMPORARY TABLE IF NOT EXISTS _predicted (id bigint PRIMARY KEY, "
                "p_alive float8, expected_purchases_90d float8, expected_purchases_365d "
                "float8, predicted_clv_365d float8) ON COMMIT DELETE ROWS"
            )
        )
        copy.copy_rows(conn, "_predicted", ("id", *VALUES), rows)
        sets = ", ".join(f"{name} = p.{name}" for name in VALUES)
        conn.execute(
            sa.text(f"UPDATE customers c SET {sets} FROM _predicted p WHERE c.id = p.id")  # noqa: S608
        )
        if not others:
            return
        nulls = ", ".join(f"{name} = NULL" for name in VALUES)
        conn.execute(
            sa.text(
                f"UPDATE customers SET {nulls} WHERE p_alive IS NOT NULL "  # noqa: S608
                "AND NOT EXISTS (SELECT 1 FROM _predicted p WHERE p.id = customers.id)"
            )
        )
        return
    if others:
        conn.execute(sa.update(customers).values(dict.fromkeys(VALUES)))
    if rows:
        conn.execute(
            sa.update(customers)
            .where(c.id == sa.bindparam("cid"))
            .values({name: sa.bindparam(f"v_{name}") for name in VALUES}),
            [{"cid": r[0], **{f"v_{n}": v for n, v in zip(VALUES, r[1:], strict=True)}}
             for r in rows],
        )  # fmt: skip


def clear(conn: Connection) -> None:
    """No fit: every customer's values null (never a stale one beside a "not fitted")."""
    held = sa.or_(*(customers.c[name].is_not(None) for name in VALUES))
    conn.execute(sa.update(customers).where(held).values(dict.fromkeys(VALUES)))


def record_fit(
    conn: Connection,
    *,
    now: datetime,
    fitted: bool,
    reason: str,
    customers_: int,
    repeat_buyers: int,
    purchase_model: dict[str, Any] | None,
    spend_model: dict[str, Any] | None,
) -> None:
    conn.execute(
        sa.insert(prediction_fits).values(
            fitted_at=now,
            fitted=fitted,
            reason=reason,
            customers=customers_,
            repeat_buyers=repeat_buyers,
            purchase_model=purchase_model,
            spend_model=spend_model,
        )
    )


def latest_fit(conn: Connection) -> dict[str, Any] | None:
    """The last fit: when, whether, why not, its parameters."""
    f = prediction_fits.c
    row = conn.execute(sa.select(prediction_fits).order_by(f.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    found = dict(row)
    for key in ("purchase_model", "spend_model"):
        if isinstance(found[key], str):
            found[key] = json.loads(found[key])
    return found


@dataclass(frozen=True)
class Predicted:
    """One customer as `customers top --predicted` lists them."""

    email: str
    first_name: str
    purchases: int
    spent_cents: int
    p_alive: float | None
    expected_purchases_365d: float | None
    predicted_clv_365d: float


def top_predicted(conn: Connection, *, limit: int) -> tuple[list[Predicted], int]:
    """The customers with the highest predicted 365-day value, best first, and how many
    have one."""
    c = customers.c
    has = c.predicted_clv_365d.is_not(None)
    count = int(conn.execute(sa.select(sa.func.count()).where(has)).scalar_one())
    query = (
        sa.select(
            c.email,
            c.first_name,
            c.purchases,
            c.total_spent_cents,
            c.p_alive,
            c.expected_purchases_365d,
            c.predicted_clv_365d,
        )
        .where(has)
        .order_by(c.predicted_clv_365d.desc(), c.id)
        .limit(limit)
    )
    return [Predicted(*row) for row in conn.execute(query)], count


def best_at_risk(conn: Connection, *, percent: int = 20, below: float = 0.5) -> tuple[int, int]:
    """Of the best `percent` by lifetime spend, (how many, how many with p_alive below
    `below`): the customers to win back first."""
    c = customers.c
    best = sa.and_(c.spend_percentile >= 100 - percent, c.total_spent_cents > 0)
    query = sa.select(sa.func.count(), sa.func.count().filter(c.p_alive < below)).where(best)
    total, risky = conn.execute(query).one()
    return int(total), int(risky)

"""Small SQL helpers shared by the store modules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa

from dripper.store.engine import Dialect, dialect_of

T = TypeVar("T")

# Rows per statement in bulk work: well under SQLite's 32,766 bound parameters even for
# the widest table, and big enough that round trips stop mattering.
CHUNK = 1000


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_ignoring(dialect: Dialect, table: sa.Table, conflict: Sequence[str]) -> sa.Insert:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING: a row another process inserted first is
    left alone instead of failing the whole transaction."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))


def allocate_ids(conn: sa.Connection, table: sa.Table, count: int) -> list[int]:
    """PostgreSQL: `count` fresh ids from the table's sequence in one round trip.

    Inserting with ids known up front lets bulk inserts skip RETURNING, which makes
    SQLAlchemy send one huge multi-VALUES statement that psycopg re-parses in Python
    (about 50 us a row); a plain executemany is pipelined and several times cheaper."""
    if count <= 0:
        return []
    query = sa.text(
        "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
    )
    return list(conn.execute(query, {"table": table.name, "n": count}).scalars())


def insert_returning_ids(
    conn: sa.Connection, table: sa.Table, values: Sequence[dict[str, object]]
) -> list[int]:
    """Insert rows (no conflicts possible) and return their ids in order."""
    dialect = dialect_of(conn)
    if not values:
        return []
    if dialect == "postgresql":
        ids = allocate_ids(conn, table, len(values))
        conn.execute(sa.insert(table), [{**v, "id": i} for v, i in zip(values, ids, strict=True)])
        return ids
    rows = conn.execute(
        sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), list(values)
    ).all()
    return [r.id for r in rows]

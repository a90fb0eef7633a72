"""PostgreSQL bulk writes through COPY: the planner's thousands of rows per batch.

A psycopg executemany costs about 20 us a row here (pipelined, but still one statement
each); COPY in text format about as much (psycopg picks a dumper per value, the server
parses text); binary COPY with the column types given up front about 3. Rows that may
already exist (re-planning is a no-op) go through a session-local staging table and one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so the unique keys keep their guarantee.
Everything runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


# (table, columns) -> the columns' type oids. Built-in types have the same oid in every
# database, so one lookup per process serves every connection.
_TYPES: dict[tuple[str, tuple[str, ...]], list[int]] = {}
_FIRST_USER_OID = 16384  # PostgreSQL's FirstNormalObjectId


def column_types(conn: Connection, table: str, columns: Sequence[str]) -> list[int]:
    key = (table, tuple(columns))
    if key not in _TYPES:
        query = sa.text(
            "SELECT attname, atttypid FROM pg_attribute "
            "WHERE attrelid = CAST(:table AS regclass) AND attnum > 0"
        )
        found = {name: oid for name, oid in conn.execute(query, {"table": table})}
        types = [int(found[c]) for c in columns]
        if max(types) >= _FIRST_USER_OID:
            return types  # a type of this database only: not for the cache
        _TYPES[key] = types
    return _TYPES[key]


def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows straight into `table` (no conflict possible: fresh ids), in binary with
    the columns' types set once, so psycopg neither guesses a type per value nor the
    server parses text (dicts go to jsonb columns as they are)."""
    types = column_types(conn, table, columns)
    names = ", ".join(columns)
    with (
        _driver(conn).cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


def stage(conn: Connection, like: str) -> str:
    """A temporary table shaped like `like`, empty, for this connection's session."""
    name = f"_stage_{like}"
    conn.execute(
        sa.text(f"CREATE TEMP TABLE IF NOT EXISTS {name} (LIKE {like} INCLUDING DEFAULTS)")
    )
    conn.execute(sa.text(f"TRUNCATE {name}"))
    return name


def insert_staged(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    conflict: Sequence[str],
    returning: Sequence[str] = (),
    defaulted: Sequence[str] = (),
) -> list[sa.Row[Any]]:
    """COPY rows into a staging table, then INSERT them into `table` leaving alone those
    that conflict on `conflict`; returns `returning` columns of the rows inserted.
    `defaulted` columns (first in `columns`) are not in the rows: the staging table's
    defaults, the target's own, fill them in."""
    assert tuple(columns[: len(defaulted)]) == tuple(defaulted), "defaulted columns first"
    staged = stage(conn, table)
    copy_rows(conn, staged, columns[len(defaulted) :], rows)
    names = ", ".join(columns)
    # In the conflict key's order: two transactions inserting overlapping keys then wait
    # for each other's index entries in one order, never each for the other's (deadlock).
    keys = ", ".join(conflict)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} "  # noqa: S608
        f"ORDER BY {keys} ON CONFLICT ({keys}) DO NOTHING"
    )
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
        return list(conn.execute(sa.text(sql)))
    conn.execute(sa.text(sql))
    return []

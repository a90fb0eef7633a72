"""Small SQL helpers shared by the store modules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa

from dripper.store.engine import Dialect

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

"""dripper's database: SQLite or PostgreSQL through SQLAlchemy, migrated with Alembic.

Importing this package loads SQLAlchemy but not Alembic: that is only imported when a
migration actually runs.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from dripper.store.migrate import HEAD
from dripper.store.records import (
    EnrollmentRecord,
    EventRecord,
    OutboxRecord,
    SuppressionReason,
    SuppressionRecord,
    Timeline,
    TrackingKind,
    TrackingRecord,
    UpsertCounts,
)
from dripper.store.store import Store, open_store

# `Connection`: what `Store.transaction()` and `reading()` give; outside the store it is a
# handle passed back to the store's functions, never a place to run SQL.
__all__ = [
    "HEAD",
    "Connection",
    "EnrollmentRecord",
    "EventRecord",
    "OutboxRecord",
    "Store",
    "SuppressionReason",
    "SuppressionRecord",
    "Timeline",
    "TrackingKind",
    "TrackingRecord",
    "UpsertCounts",
    "open_store",
]

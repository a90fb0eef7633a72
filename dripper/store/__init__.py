"""dripper's database: SQLite or PostgreSQL through SQLAlchemy, migrated with Alembic.

Importing this package loads SQLAlchemy but not Alembic: that is only imported when a
migration actually runs.
"""

from __future__ import annotations

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

__all__ = [
    "HEAD",
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

"""Migration 0007 on a populated database, SQLite and PostgreSQL: a complaint's
suppression is stored with DESIGN 8's reason `complained`; a database written before it
(reason `complaint`) is upgraded in place, and a downgrade gives the old name back."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from dripper.store import Store, migrate
from dripper.store.records import SuppressionReason
from dripper.store.schema import suppressions

NOW = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def reasons(store: Store) -> list[str]:
    with store.reading() as conn:
        return sorted(conn.execute(sa.select(suppressions.c.reason)).scalars())


def test_complaints_are_stored_as_complained_and_old_ones_upgraded(store: Store) -> None:
    """Down to 0006 the complaint reads `complaint` (the old name); up again, `complained`;
    other reasons are never touched, and the record reads back as the enum."""
    store.suppress("spam-button@example.com", reason=SuppressionReason.COMPLAINED, now=NOW)
    store.suppress("gone@example.com", reason=SuppressionReason.BOUNCED, now=NOW)
    assert reasons(store) == ["bounced", "complained"]

    migrate.downgrade(store.engine, store.dialect, "0006")
    assert reasons(store) == ["bounced", "complaint"]
    migrate.upgrade(store.engine, store.dialect)
    assert reasons(store) == ["bounced", "complained"]
    found = store.suppression_for("spam-button@example.com")
    assert found is not None
    assert found.reason is SuppressionReason.COMPLAINED

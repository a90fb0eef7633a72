"""A forgotten customer's link costs what a valid one costs (issue 23): every lookup of a
delivery by its id is a bounded look-up by the Message-ID's unique index (the other
domains dripper gave included), never a scan of the outbox by prefix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa

from dripper.store import Store, message_domains, tracking
from dripper.store.schema import customers, enrollments, outbox

T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def seed(store: Store, count: int, domain: str) -> list[str]:
    """`count` sent emails at `domain`; their delivery ids."""
    ids = [f"{i:026d}" for i in range(count)]
    with store.transaction() as conn:
        conn.execute(
            sa.insert(customers),
            [
                {
                    "email": f"c{i}@example.com",
                    "tags": [],
                    "attributes": {},
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i in range(count)
            ],
        )
        cids = list(conn.execute(sa.select(customers.c.id).order_by(customers.c.id)).scalars())
        conn.execute(
            sa.insert(enrollments),
            [
                {"customer_id": c, "campaign": "welcome", "occurrence": "x", "enrolled_at": T0}
                for c in cids
            ],
        )
        eids = list(conn.execute(sa.select(enrollments.c.id).order_by(enrollments.c.id)).scalars())
        conn.execute(
            sa.insert(outbox),
            [
                {
                    "enrollment_id": e,
                    "customer_id": c,
                    "campaign": "welcome",
                    "occurrence": "x",
                    "step": "thank-you",
                    "due_at": T0,
                    "next_attempt_at": T0,
                    "status": "sent",
                    "message_id": f"{d}@{domain}",
                    "sent_at": T0,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for e, c, d in zip(eids, cids, ids, strict=True)
            ],
        )
        message_domains.remember(conn, domain)
    return ids


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)


def test_a_gone_delivery_costs_a_few_indexed_lookups_never_a_scan(store: Store) -> None:
    """A forgotten (or never sent) delivery is looked up exactly, with each domain dripper
    gave, in a fixed number of statements, none a LIKE; one sent before the From domain
    changed is found the same way."""
    old = seed(store, 300, "old.example")
    with store.transaction() as conn:
        message_domains.remember(conn, "acme.test")
    with statements(store) as seen, store.reading() as conn:
        found = tracking.deliveries(conn, [old[5], "z" * 26], domain="acme.test")
        hits = tracking.sent(conn, ["y" * 26], domain="acme.test")
    assert set(found) == {old[5]}
    assert hits == {}
    assert not any("LIKE" in sql.upper() for sql in seen), seen
    assert len(seen) <= 8, seen  # BEGIN; per call: exact, the domains, the others


def test_the_migration_reads_the_domains_the_outbox_holds(store: Store) -> None:
    """Migration 0011 fills the list of domains from the Message-IDs already given, the
    newest first, so a database upgraded with old sends still finds them."""
    from dripper.store import migrate

    seed(store, 3, "old.example")
    migrate.downgrade(store.engine, store.dialect, "0010")
    with store.transaction() as conn:
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.message_id == f"{2:026d}@old.example")
            .values(message_id=f"{2:026d}@new.example")
        )
    migrate.upgrade(store.engine, store.dialect)
    with store.reading() as conn:
        assert message_domains.known(conn) == ["new.example", "old.example"]

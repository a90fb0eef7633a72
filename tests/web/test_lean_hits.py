"""Migration 0008 on a shop that has heard back, on SQLite and PostgreSQL: a hit's row loses
its foreign key to customers, and the customer index keeps only the rows tied to no email.
Nothing stored changes. The customer sheet still shows every row, and `forget` still erases
every row."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dripper.services.hits import record_hits
from dripper.store import Store, migrate, open_store
from dripper.store.schema import customers, outbox, tracking_events
from tests.support.serve import Shop
from tests.web.test_hitproc import NEXT_DAY, opens

FK = "fk_tracking_events_customer_id_customers"


def rows(store: Store) -> list[tuple[Any, ...]]:
    t = tracking_events.c
    with store.reading() as conn:
        found = conn.execute(sa.select(t.id, t.outbox_id, t.customer_id, t.kind, t.at))
        return sorted(tuple(r) for r in found)


def foreign_keys(store: Store) -> set[str]:
    found = sa.inspect(store.engine).get_foreign_keys("tracking_events")
    return {str(fk["name"]) for fk in found}


def index_sql(store: Store) -> str:
    with store.reading() as conn:
        if store.dialect == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_tracking_events_customer'"
        else:
            sql = (
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_tracking_events_customer' "
                "AND schemaname = current_schema()"  # another schema's (a test's) is not ours
            )
        return str(conn.exec_driver_sql(sql).scalar_one())


def test_hits_lose_the_customer_key_and_forget_still_erases_every_row(shop: Shop) -> None:
    """Opens on every email and a referral visit (no email): the same rows before and after
    a downgrade to 0007 and back; at 0008 no foreign key to customers and a partial
    index; Ada's sheet lists her opens and her visit, and forgetting her erases both
    kinds and nothing of anyone else's."""
    hits, domain = opens(shop, 12)
    store = open_store(shop.db_url)
    try:
        record_hits(store, domain, hits)
        with store.transaction() as conn:
            ada = conn.execute(
                sa.select(customers.c.id).where(customers.c.email == "ada@example.com")
            ).scalar_one()
            conn.execute(
                tracking_events.insert().values(
                    customer_id=ada, kind="referral", at=NEXT_DAY, machine=False, data={}
                )
            )
            ada_emails = set(
                conn.execute(sa.select(outbox.c.id).where(outbox.c.customer_id == ada)).scalars()
            )
        before = rows(store)
        assert {r[3] for r in before} == {"open", "referral"}

        assert FK not in foreign_keys(store)
        assert "outbox_id IS NULL" in index_sql(store)
        migrate.downgrade(store.engine, store.dialect, "0007")
        assert FK in foreign_keys(store)
        assert "outbox_id IS NULL" not in index_sql(store)
        assert rows(store) == before
        migrate.upgrade(store.engine, store.dialect)
        assert FK not in foreign_keys(store)
        assert "outbox_id IS NULL" in index_sql(store)
        assert rows(store) == before

        sheet = store.timeline("ada@example.com")
        assert sheet is not None
        mine = [r for r in before if r[2] == ada]
        assert sorted(h.kind.value for h in sheet.tracking) == sorted(r[3] for r in mine)
        assert any(r[1] in ada_emails for r in mine)
        assert any(r[1] is None for r in mine)

        assert store.forget("ada@example.com", now=NEXT_DAY)
        left = rows(store)
        assert left == [r for r in before if r[2] != ada]
        assert not any(r[1] in ada_emails for r in left)
    finally:
        store.close()

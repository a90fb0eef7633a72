"""Migration 0006 (the leaner outbox) on a populated database, SQLite and PostgreSQL: sends
in every state, with their delivery attempts and hits, come through a downgrade and an
upgrade row for row (SQLite's table copy cascades into nothing); afterwards the outbox has
no foreign key to customers and no (campaign, step) index, and forgetting a customer still
removes their sends, attempts and hits through the enrollments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.engine.model import SendStatus
from dripper.services.planning import Planner
from dripper.store import Store, migrate
from dripper.store.ingest import NewEvent
from dripper.store.schema import delivery_attempts, outbox, tracking_events

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
TABLES = ("customers", "events", "enrollments", "outbox", "delivery_attempts", "tracking_events")


def populate(store: Store) -> None:
    """Eight customers' welcome sequences, their sends put in every state there is."""
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    planner = Planner(config, store, campaigns)
    planner.record_events(
        [NewEvent(f"c{i}@example.com", "purchase", T0, {"amount": "20"}) for i in range(8)],
        now=T0,
    )
    states = list(SendStatus)
    with store.transaction() as conn:
        ids = conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id)).scalars().all()
        assert len(ids) >= len(states)
        for i, (oid, status) in enumerate(zip(ids, states, strict=False)):
            conn.execute(
                outbox.update()
                .where(outbox.c.id == oid)
                .values(
                    status=status.value,
                    attempts=i % 3,
                    message_id=f"m{oid}@acme.test",
                    lease_owner="host:1" if status is SendStatus.SENDING else None,
                    lease_until=T0 + timedelta(minutes=15)
                    if status is SendStatus.SENDING
                    else None,
                    sent_at=T0 if status is SendStatus.SENT else None,
                    reason="ambiguous: died mid-send" if status is SendStatus.AMBIGUOUS else None,
                )
            )
            conn.execute(
                delivery_attempts.insert().values(
                    outbox_id=oid,
                    started_at=T0,
                    finished_at=None if status is SendStatus.SENDING else T0,
                    outcome=None if status is SendStatus.SENDING else "sent",
                )
            )
            customer = conn.execute(
                sa.select(outbox.c.customer_id).where(outbox.c.id == oid)
            ).scalar_one()
            conn.execute(
                tracking_events.insert().values(
                    outbox_id=oid, customer_id=customer, kind="open", at=T0, machine=False
                )
            )


def snapshot(store: Store) -> dict[str, Any]:
    with store.reading() as conn:
        found: dict[str, Any] = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in TABLES
        }
        # The columns 0005 has (`kind` came with 0015).
        columns = [c for c in outbox.c if c.name != "kind"]
        found["outbox rows"] = [
            tuple(r) for r in conn.execute(sa.select(*columns).order_by(outbox.c.id))
        ]
    return found


def test_the_migration_keeps_every_row_in_every_state(store: Store) -> None:
    """Down to 0005 and up to 0006 again: the same rows in every table."""
    populate(store)
    before = snapshot(store)
    assert {r[7] for r in before["outbox rows"]} >= {s.value for s in SendStatus}
    migrate.downgrade(store.engine, store.dialect, "0005")
    inspector = sa.inspect(store.engine)
    assert any(fk["referred_table"] == "customers" for fk in inspector.get_foreign_keys("outbox"))
    assert snapshot(store) == before
    migrate.upgrade(store.engine, store.dialect)
    assert snapshot(store) == before
    inspector = sa.inspect(store.engine)
    assert [fk["referred_table"] for fk in inspector.get_foreign_keys("outbox")] == ["enrollments"]
    assert "ix_outbox_campaign_step" not in {i["name"] for i in inspector.get_indexes("outbox")}


def test_forgetting_still_removes_every_send(store: Store) -> None:
    """Without its own foreign key, a customer's sends go with their enrollments, and the
    sends' attempts and hits with the sends."""
    populate(store)
    with store.reading() as conn:
        mine = conn.execute(
            sa.select(outbox.c.id).where(outbox.c.message_id.is_not(None)).limit(1)
        ).scalar_one()
        email = conn.execute(
            sa.text(
                "SELECT c.email FROM customers c JOIN outbox o ON o.customer_id = c.id "
                "WHERE o.id = :id"
            ),
            {"id": mine},
        ).scalar_one()
    assert store.forget(email, now=T0)
    with store.reading() as conn:
        for table, column in (
            (outbox, outbox.c.id),
            (delivery_attempts, delivery_attempts.c.outbox_id),
            (tracking_events, tracking_events.c.outbox_id),
        ):
            left = conn.execute(sa.select(sa.func.count()).where(column == mine)).scalar_one()
            assert left == 0, table.name

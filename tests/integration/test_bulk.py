"""Bulk event ingestion and planning (COPY on PostgreSQL, executemany on SQLite) give the
same results as one event at a time, and planning again changes nothing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.services.planning import Planner
from dripper.store import Store
from dripper.store.customers import get_customer
from dripper.store.ingest import NewEvent
from dripper.store.schema import enrollments, events, outbox

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)  # the day before the newsletter's first run


def runner(store: Store) -> Planner:
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    return Planner(config, store, campaigns)


def counts(store: Store) -> tuple[int, int, int]:
    with store.reading() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (events, enrollments, outbox)
        )


def test_bulk_purchases_enroll_plan_and_update_the_customers(store: Store) -> None:
    r = runner(store)
    batch = [
        NewEvent(f"c{i}@example.com", "purchase", T0, {"amount": "12.50", "note": "Zoë ☕"})
        for i in range(120)
    ]
    # The second purchase of c0 lands in a later batch, after the first's effects.
    batch.append(NewEvent("c0@example.com", "purchase", T0 + timedelta(days=2), {"amount": 5}))
    report = r.record_events(batch, now=T0 + timedelta(days=2), batch_size=100)

    # 120 welcome enrollments + c0's referral request; c0's welcome converted.
    assert report.enrolled == 121
    assert counts(store) == (121, 121, 241)
    with store.reading() as conn:
        c0 = get_customer(conn, "c0@example.com")
        c1 = get_customer(conn, "c1@example.com")
        data = conn.execute(sa.select(events.c.data).limit(1)).scalar_one()
        converted = conn.execute(
            sa.select(enrollments.c.status).where(enrollments.c.campaign == "welcome")
        ).scalars()
        statuses = sorted(set(converted))
    assert c0 is not None
    assert c1 is not None
    assert c0.purchases == 2
    assert c0.total_spent == Decimal("17.50")
    assert c0.first_purchase_at == T0
    assert c0.last_purchase_at == T0 + timedelta(days=2)
    assert c1.purchases == 1
    assert c1.total_spent == Decimal("12.50")
    assert data == {"amount": "12.50", "note": "Zoë ☕"}
    assert statuses == ["active", "converted"]


def test_a_schedule_run_for_many_customers_is_planned_once(store: Store) -> None:
    r = runner(store)
    r.record_events((NewEvent(f"c{i}@example.com", "signup", T0, {}) for i in range(150)), now=T0)
    first = r.plan(T0 + timedelta(days=1))
    assert first.enrolled == 150
    before = counts(store)
    again = r.plan(T0 + timedelta(days=1, hours=1))
    assert again.enrolled == 0
    assert counts(store) == before
    with store.reading() as conn:
        due = conn.execute(
            sa.select(sa.func.count()).where(outbox.c.campaign == "value-newsletter")
        ).scalar_one()
    assert due == 150


def test_bulk_customer_reads_match_the_single_read(store: Store) -> None:
    """The planner's bulk reads (a binary cursor on PostgreSQL) give the very `Customer`
    a single read gives: UTC-aware times, decoded tags and attributes, money as Decimal."""
    from dripper.customers.model import CustomerData
    from dripper.store import reads

    store.upsert_customers(
        [
            CustomerData(
                email=f"r{i}@example.com",
                first_name="Zoë",
                timezone="Asia/Tokyo" if i % 2 else None,
                tags=("vip", "beans") if i % 3 else (),
                attributes={"birthday": "1990-02-28", "likes": "☕ espresso"},
            )
            for i in range(5)
        ],
        now=T0,
    )
    runner(store).record_events(
        [NewEvent("r1@example.com", "purchase", T0 + timedelta(hours=1), {"amount": "7.25"})],
        now=T0 + timedelta(hours=1),
    )
    store.unsubscribe("r4@example.com", now=T0 + timedelta(hours=2))
    with store.reading() as conn:
        single = {c.id: c for c in (get_customer(conn, f"r{i}@example.com") for i in range(5)) if c}
        by_id = reads.by_ids(conn, list(single))
        page = reads.subscribed_page(conn, after_id=0, limit=10)
        changed = reads.subscribed_page(
            conn, after_id=0, limit=10, changed_since=T0 + timedelta(minutes=30)
        )
    assert by_id == single
    assert page == [c for _, c in sorted(single.items()) if c.subscribed]
    assert [c.email for c in changed] == ["r1@example.com"]
    r1 = by_id[page[1].id]
    assert r1.purchases == 1
    assert r1.total_spent == Decimal("7.25")
    assert r1.created_at.tzinfo is UTC
    assert r1.last_purchase_at == T0 + timedelta(hours=1)
    assert r1.tags == ("vip", "beans")
    assert r1.attributes["likes"] == "☕ espresso"


def test_parallel_workers_keep_each_customers_events_in_order(store: Store) -> None:
    """Two workers (PostgreSQL) share the customers: a customer's later purchases still
    see the earlier ones, wherever the batches are cut."""
    events_in = [
        NewEvent(f"p{i}@example.com", "purchase", T0 + timedelta(hours=n), {"amount": 10})
        for n in range(3)
        for i in range(200)
        if n < 1 + i % 3  # p0: one purchase, p1: two, p2: three, ...
    ]
    report = runner(store).record_events(events_in, now=T0 + timedelta(days=1), batch_size=64)
    with store.reading() as conn:
        bought = {
            email: n for email, n in conn.execute(sa.text("SELECT email, purchases FROM customers"))
        }
        grouped = sa.text(
            "SELECT campaign || ':' || status, count(*) FROM enrollments GROUP BY campaign, status"
        )
        per_campaign = {key: n for key, n in conn.execute(grouped)}
    assert bought == {f"p{i}@example.com": 1 + i % 3 for i in range(200)}
    repeat_buyers = sum(1 for i in range(200) if i % 3)
    # every first purchase enrolls `welcome`; a second one converts it and enrolls the
    # referral request (only on the second: `if: customer.purchases == 2`); a third, the
    # handwritten card (`if: customer.purchases == 3`)
    third = sum(1 for i in range(200) if i % 3 == 2)
    assert per_campaign == {
        "welcome:active": 200 - repeat_buyers,
        "welcome:converted": repeat_buyers,
        "referral-request:active": repeat_buyers,
        "thank-you-card:active": third,
    }
    assert report.enrolled == 200 + repeat_buyers + third


def test_a_bad_event_stops_the_workers_with_its_error(store: Store) -> None:
    from dripper.errors import InputError

    good = (NewEvent(f"q{i}@example.com", "purchase", T0, {"amount": 3}) for i in range(1000))
    bad = [NewEvent("bad@example.com", "purchase", T0, {"amount": "lots"})]
    more = (NewEvent(f"z{i}@example.com", "purchase", T0, {}) for i in range(100_000))
    with pytest.raises(InputError, match="purchase amount 'lots'"):
        runner(store).record_events(
            itertools.chain(good, bad, more), now=T0, batch_size=100, workers=2
        )
    # the bad event's batch is rolled back whole; the workers stopped long before the end
    with store.reading() as conn:
        emails = set(conn.execute(sa.text("SELECT email FROM customers")).scalars())
    assert "bad@example.com" not in emails
    assert sum(e.startswith("z") for e in emails) < 50_000

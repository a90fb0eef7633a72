"""`customer.spend_percentile` and `spend_rank`: one set-based statement ranks every
customer by lifetime spend, ties alike, the same on SQLite and PostgreSQL; the planner
refreshes them before each pass, so `when: customer.spend_percentile >= 80` enrolls the
best customers; and migration 0005 fills in the campaign of the hits already recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.services.planning import Planner
from dripper.services.stats import top_customers
from dripper.store import Store, migrate
from dripper.store.customers import get_customer
from dripper.store.ingest import NewEvent
from dripper.store.schema import customers, enrollments, outbox, tracking_events

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)

# Lifetime spends: two customers who never bought, a tie at 10, then 20 and 50.
SPENDS = {"a": [], "b": [], "c": ["10"], "d": ["4", "6"], "e": ["20"], "f": ["30", "20"]}


def planner(store: Store) -> Planner:
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    return Planner(config, store, campaigns)


def shop(store: Store) -> Planner:
    p = planner(store)
    items = [NewEvent(f"{name}@example.com", "signup", T0, {}) for name in SPENDS]
    for name, amounts in SPENDS.items():
        for i, amount in enumerate(amounts):
            at = T0 + timedelta(days=i + 1)
            items.append(NewEvent(f"{name}@example.com", "purchase", at, {"amount": amount}))
    p.record_events(items, now=T0 + timedelta(days=3))
    return p


def ranks(store: Store) -> dict[str, tuple[int | None, int | None]]:
    c = customers.c
    with store.reading() as conn:
        rows = conn.execute(sa.select(c.email, c.spend_percentile, c.spend_rank))
        return {email.split("@")[0]: (pct, rank) for email, pct, rank in rows}


def test_percentiles_and_ranks_with_ties(store: Store) -> None:
    """Least spent is 0, most is 100, equal spends share a value (floored, both databases
    alike); rank 1 is the biggest spender and ties share a rank; who never bought has no
    rank (a first purchase elsewhere must not rewrite all of them)."""
    p = shop(store)
    assert p.refresh_spend(T0 + timedelta(days=3))
    assert ranks(store) == {
        "a": (0, None),
        "b": (0, None),
        "c": (40, 3),
        "d": (40, 3),
        "e": (80, 2),
        "f": (100, 1),
    }
    with store.reading() as conn:
        found = get_customer(conn, "e@example.com")
    assert found is not None
    context = found.as_context()
    assert (context["spend_percentile"], context["spend_rank"]) == (80, 2)


def test_the_refresh_is_one_statement_and_runs_only_after_a_change(store: Store) -> None:
    """Ranking a shop is one UPDATE (not a query per customer); with no purchase and no new
    customer since, the next pass does not rank again; a purchase makes it."""
    p = shop(store)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert p.refresh_spend(T0 + timedelta(days=3))
        assert sum(s.lstrip().upper().startswith("UPDATE CUSTOMERS") for s in statements) == 1
        assert not p.refresh_spend(T0 + timedelta(days=4))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    p.record_events(
        [NewEvent("a@example.com", "purchase", T0 + timedelta(days=5), {"amount": "99"})],
        now=T0 + timedelta(days=5),
    )
    assert p.refresh_spend(T0 + timedelta(days=5))
    assert ranks(store)["a"] == (100, 1)
    assert ranks(store)["f"] == (80, 2)


def test_the_vip_campaign_enrolls_the_best_customers_who_came_back(store: Store) -> None:
    """The shipped `vip` campaign (`spend_percentile >= 80 and purchases >= 2`) enrolls f
    (the top spender, two purchases) and neither e (top 20%, one purchase) nor d."""
    p = shop(store)
    p.plan(T0 + timedelta(days=3), force_scan=True)
    e = enrollments.c
    with store.reading() as conn:
        enrolled = conn.execute(
            sa.select(customers.c.email)
            .select_from(enrollments.join(customers, customers.c.id == e.customer_id))
            .where(e.campaign == "vip")
        ).scalars()
        assert sorted(enrolled) == ["f@example.com"]


def test_the_top_customers_and_their_share_of_revenue(store: Store) -> None:
    """`customers top`'s numbers: the top 20% is whoever has a percentile of 80 or more and
    spent something, ranked now (no planning pass needed)."""
    shop(store)
    best = top_customers(store, percent=20)
    assert [(r.email, r.rank, r.percentile) for r in best.customers] == [
        ("f@example.com", 1, 100),
        ("e@example.com", 2, 80),
    ]
    assert (best.count, best.everyone, best.top_cents, best.total_cents) == (2, 6, 7000, 9000)
    assert top_customers(store, percent=100).count == 4  # the two who never bought: not "top"
    assert top_customers(store, percent=20, limit=1).count == 2


def test_migration_0005_fills_in_the_campaign_of_recorded_hits(store: Store) -> None:
    """Hits recorded before 0005 get their email's campaign, step and variant, so the stats
    of an upgraded shop count them; a person's answer marks the email opened and clicked;
    a soft bounce recorded as `bounce` becomes `soft_bounce` (not a hard bounce)."""
    p = shop(store)
    p.plan(T0 + timedelta(days=3))
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(outbox.c.id, outbox.c.customer_id, outbox.c.campaign, outbox.c.step)
            .order_by(outbox.c.id)
            .limit(1)
        ).one()
        for kind, data in (("answer", {"question": "q", "answer": "a"}),
                           ("bounce", {"class": "bounce_soft"})):  # fmt: skip
            conn.execute(
                tracking_events.insert().values(
                    outbox_id=row.id,
                    customer_id=row.customer_id,
                    kind=kind,
                    at=T0,
                    machine=False,
                    data=data,
                )
            )
    migrate.downgrade(store.engine, store.dialect, "0004")
    migrate.upgrade(store.engine, store.dialect)
    with store.reading() as conn:
        t = tracking_events.c
        filled = conn.execute(sa.select(t.kind, t.campaign, t.step).order_by(t.id)).all()
        firsts = conn.execute(
            sa.select(outbox.c.opened_at, outbox.c.clicked_at).where(outbox.c.id == row.id)
        ).one()
        assert ranks(store)["f"] == (None, None)  # refreshed by the next planning pass
    assert [tuple(f) for f in filled] == [
        ("answer", row.campaign, row.step),
        ("soft_bounce", row.campaign, row.step),
    ]
    assert tuple(firsts) == (T0, T0)
    assert p.refresh_spend(T0 + timedelta(days=4))
    assert ranks(store)["f"] == (100, 1)


def test_one_daemon_ranks_at_a_time(store: Store) -> None:
    """PostgreSQL: while another transaction holds the ranking lock, a pass skips the
    ranking (the next pass does it) instead of waiting or ranking twice."""
    from dripper.store import spend

    p = shop(store)
    if store.dialect != "postgresql":
        assert p.refresh_spend(T0 + timedelta(days=3))  # SQLite: one writer at a time anyway
        return
    with store.transaction() as other:
        assert spend.try_lock(other)
        assert not p.refresh_spend(T0 + timedelta(days=3))
    assert p.refresh_spend(T0 + timedelta(days=3))

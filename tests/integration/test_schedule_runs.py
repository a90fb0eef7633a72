"""A schedule run planned by the database (two INSERT ... SELECT statements) writes exactly
the rows the Python planner writes a customer at a time, on SQLite and PostgreSQL: random
customers (time zones with and without daylight saving, none, unknown; statuses; addresses
in any script), random campaigns (steps with offsets, local send times, A/B subjects),
random runs (some steps already too late)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.customers.model import CustomerData
from dripper.services.planning import Planner
from dripper.store import Store
from dripper.store.schema import (
    campaign_state,
    customers,
    enrollments,
    events,
    outbox,
    suppressions,
)

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
ZONES = [None, "UTC", "Europe/London", "America/New_York", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Pacific/Kiritimati", "America/St_Johns", "Not/AZone"]  # fmt: skip
NAMES = st.text(alphabet="abcxyzé日本ß-", min_size=1, max_size=8)
_unique = itertools.count()


def campaign_yaml(steps: list[tuple[int, time | None, int]], start: date) -> str:
    lines = [
        "description: a newsletter",
        "schedule:",
        "  every: 6w",
        f"  starting: {start.isoformat()}",
        "steps:",
    ]
    for i, (hours, send_at, subjects) in enumerate(steps):
        lines += [f"  - id: s{i}", f"    after: {hours}h", "    template: newsletter.mjml"]
        if send_at is not None:
            lines.append(f'    send_at: "{send_at:%H:%M}"')
        if subjects == 1:
            lines.append('    subject: "One"')
        else:
            lines.append("    subject:")
            lines += [f'      - "Subject {n}"' for n in range(subjects)]
    return "\n".join(lines) + "\n"


def planner(store: Store, tmp: Path, text: str) -> Planner:
    folder = tmp / f"campaigns{next(_unique)}"
    folder.mkdir()
    (folder / "news.yaml").write_text(text)
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(folder, SCAFFOLD / "templates")
    assert not problems, problems
    return Planner(config, store, campaigns)


def rows(store: Store) -> tuple[list[Any], list[Any]]:
    e, o = enrollments.c, outbox.c
    with store.reading() as conn:
        found_e = conn.execute(
            sa.select(
                e.customer_id, e.campaign, e.occurrence, e.enrolled_at, e.event_id, e.status
            ).order_by(e.customer_id)
        ).all()
        found_o = conn.execute(
            sa.select(
                o.customer_id,
                o.campaign,
                o.occurrence,
                o.step,
                o.due_at,
                o.next_attempt_at,
                o.status,
                o.reason,
                o.variant,
                o.attempts,
                o.created_at,
                o.updated_at,
            ).order_by(o.customer_id, o.step)
        ).all()
    return [tuple(r) for r in found_e], [tuple(r) for r in found_o]


def clear(store: Store) -> None:
    with store.transaction() as conn:
        for table in (outbox, enrollments, events, customers, suppressions, campaign_state):
            conn.execute(table.delete())


people = st.lists(st.tuples(NAMES, st.sampled_from(ZONES), st.booleans()), min_size=1, max_size=25)
step_lists = st.lists(
    st.tuples(
        st.integers(0, 24 * 20),
        st.one_of(st.none(), st.times().map(lambda t: t.replace(second=0, microsecond=0))),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=4,
).map(lambda s: sorted(s, key=lambda step: step[0]))  # offsets: steps in sending order


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    who=people,
    steps=step_lists,
    start=st.dates(date(2027, 1, 1), date(2027, 12, 31)),
    late=st.integers(0, 24 * 30),
)
def test_the_database_plans_a_run_as_python_does(
    store: Store,
    tmp_path: Path,
    who: list[tuple[str, str | None, bool]],
    steps: list[tuple[int, time | None, int]],
    start: date,
    late: int,
) -> None:
    """Enrollments and outbox rows are equal, column by column, on both databases; the
    second pass of the same run changes nothing."""
    text = campaign_yaml(steps, start)
    now = datetime.combine(start, time(12), tzinfo=UTC) + timedelta(hours=late)
    found = []
    for set_based in (False, True):
        clear(store)
        data = [
            CustomerData(f"{name}.{i}@example.com", timezone=zone)
            for i, (name, zone, _) in enumerate(who)
        ]
        store.upsert_customers(data, now=now)
        for i, (_, _, subscribed) in enumerate(who):
            if not subscribed:
                store.unsubscribe(f"{who[i][0]}.{i}@example.com".lower(), now=now)
        p = planner(store, tmp_path, text)
        p.set_based = set_based
        first = p.plan(now)
        again = p.plan(now + timedelta(minutes=5))
        assert again.enrolled == 0
        assert first.enrolled == sum(1 for _, _, subscribed in who if subscribed)
        found.append(rows(store))
    python, database = found
    # Customer ids differ between the two rounds (both in id order): compare the rest.
    assert [r[1:] for r in python[0]] == [r[1:] for r in database[0]]
    assert [r[1:] for r in python[1]] == [r[1:] for r in database[1]]


def test_the_id_ranges_of_a_run_cover_every_customer_once(store: Store) -> None:
    """The ranges two connections split a run by hold each customer in exactly one of
    them, however sparse the ids are (some deleted), and one range when there is nobody."""
    from dripper.store.schedule_runs import ALL_IDS, id_ranges

    with store.reading() as conn:
        assert id_ranges(conn, 2) == [(0, ALL_IDS)]
    store.upsert_customers(
        [CustomerData(f"r{i}@example.com") for i in range(37)],
        now=datetime(2027, 1, 4, tzinfo=UTC),
    )
    with store.transaction() as conn:
        conn.execute(sa.text("DELETE FROM customers WHERE id % 5 = 0 OR id < 4"))
    with store.reading() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM customers")).scalars())
        for parts in (1, 2, 3):
            ranges = id_ranges(conn, parts)
            assert len(ranges) == parts
            assert ranges[0][0] <= min(ids)
            assert ranges[-1][1] > max(ids)
            for i in ids:
                assert sum(low <= i < high for low, high in ranges) == 1, (i, ranges)
            if parts > 1:  # about equal halves, not one range holding everyone
                assert max(sum(low <= i < high for i in ids) for low, high in ranges) < len(ids)

"""Planning at scale: N customers with one purchase each -> enrollments + outbox rows.

    python bench/plan.py [--customers 1000000] [--db sqlite|postgresql|both]

For each database: a fresh schema with N customers (set-up, not timed), then in a fresh
process, timed: N `purchase` events through `Planner.record_events` with the four shipped
campaigns (each first purchase enrolls in `welcome`: a thank-you and a day-14 offer), then
one newsletter run (`Planner.plan` on the schedule's first day: N more enrollments, one
outbox row each). Reports customers/s for both and the planning process's peak RSS.

PostgreSQL: database `dripper_bench` on 127.0.0.1 (created, dropped at the start).

    python bench/plan.py --limit [--customers N] [--db ...]

The target's yardstick (issue 14): in the same run and database, the rows the planner
writes for N customers (purchases: N events, N enrollments, 2N outbox rows; the newsletter
run: N enrollments, N outbox rows), generated in Python and written by the database
alone into tables with no index, no key and no constraint (PostgreSQL: binary COPY;
SQLite: one executemany per table in one transaction): the physical limit of writing that
much. Then the planner on a fresh schema, and the ratios planner / limit.

    python bench/plan.py --floor [--customers N]

The database's own share, for comparison: on a fresh PostgreSQL schema with N customers,
the rows the purchases phase writes (N events, N purchase updates, N enrollments, 2N
outbox rows, same tables, indexes and foreign keys) made by four set-based statements,
with no Python per row. No planner in one session can write those rows faster.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCAFFOLD = ROOT / "dripper" / "scaffold"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dripper_bench"
NOW = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)  # the day before the newsletter starts
ZONES = ["Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin", None, "UTC"]


def email(i: int) -> str:
    return f"customer.{i}@example{i % 97}.com"


def setup(url: str, customers: int) -> None:
    """A fresh schema holding `customers` customers (bulk inserts; not what is measured)."""
    from dripper.customers.model import CustomerData
    from dripper.store import open_store
    from dripper.store.customers import _insert

    store = open_store(url)
    store.ensure_schema()
    for start in range(0, customers, 10_000):
        rows = [
            CustomerData(
                email=email(i),
                first_name=f"First{i}",
                last_name=f"Last{i}",
                timezone=ZONES[i % len(ZONES)],
                locale="en",
            )
            for i in range(start, min(start + 10_000, customers))
        ]
        with store.transaction() as conn:
            _insert(conn, rows, {}, NOW - timedelta(days=30))
    store.close()


def plan(url: str, customers: int) -> dict[str, float]:
    """The measured part, in its own process so that its peak RSS is its own."""
    from dripper.campaigns import load_campaigns
    from dripper.config import load_config
    from dripper.services.planning import Planner
    from dripper.store import open_store
    from dripper.store.ingest import NewEvent

    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems, problems
    store = open_store(url)
    planner = Planner(config, store, campaigns)

    def purchases() -> Iterator[NewEvent]:
        for i in range(customers):
            yield NewEvent(email(i), "purchase", NOW, {"amount": 20 + i % 30})

    start, cpu = time.perf_counter(), cpu_now()
    report = planner.record_events(purchases(), now=NOW)
    events_s = time.perf_counter() - start
    events_cpu = [b - a for a, b in zip(cpu, cpu_now(), strict=True)]
    assert report.enrolled == customers, report.summary()

    start, cpu = time.perf_counter(), cpu_now()
    newsletter = planner.plan(NOW + timedelta(days=1))
    schedule_s = time.perf_counter() - start
    schedule_cpu = [b - a for a, b in zip(cpu, cpu_now(), strict=True)]
    assert newsletter.enrolled == customers, newsletter.summary()

    with store.reading() as conn:
        import sqlalchemy as sa

        outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
    store.close()
    return {
        "events_s": events_s,
        "schedule_s": schedule_s,
        "outbox_rows": float(outbox),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "events_own_cpu_s": events_cpu[0],
        "events_machine_cpu_s": events_cpu[1],
        "schedule_own_cpu_s": schedule_cpu[0],
        "schedule_machine_cpu_s": schedule_cpu[1],
    }


def cpu_now() -> tuple[float, float]:
    """CPU seconds so far: this process's own (user + system, its threads included), and
    the whole machine's busy time (all cores, from /proc/stat): what the planner leaves to
    the database, and whether a second core has room (lever 3 of issue 14)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: the busy ones are ours (steal is
    # time another guest of the host had our core)
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return own.ru_utime + own.ru_stime, busy / os.sysconf("SC_CLK_TCK")


# The purchases phase's rows, written by the database alone (see --floor).
FLOOR_SQL = (
    (
        "events",
        "INSERT INTO events (customer_id, type, at, data, recorded_at) "
        "SELECT id, 'purchase', :now, jsonb_build_object('amount', 20 + id % 30), :now "
        "FROM customers",
    ),
    (
        "customers (purchase fields)",
        "UPDATE customers SET purchases = purchases + 1, "
        "total_spent_cents = total_spent_cents + (20 + id % 30) * 100, "
        "first_purchase_at = :now, last_purchase_at = :now, updated_at = :now",
    ),
    (
        "enrollments",
        "INSERT INTO enrollments (customer_id, campaign, occurrence, enrolled_at, event_id, "
        "status) SELECT customer_id, 'welcome', 'event:' || id, at, id, 'active' FROM events",
    ),
    (
        "outbox (2 per enrollment)",
        "INSERT INTO outbox (enrollment_id, customer_id, campaign, occurrence, step, due_at, "
        "next_attempt_at, status, variant, created_at, updated_at) "
        "SELECT e.id, e.customer_id, e.campaign, e.occurrence, s.step, "
        "e.enrolled_at + s.after, e.enrolled_at + s.after, 'planned', 0, :now, :now "
        "FROM enrollments e, (VALUES ('thank-you', interval '0'), "
        "('second-sale', interval '14 days')) AS s(step, after)",
    ),
)


def floor(url: str) -> dict[str, float]:
    """The purchases phase's rows by set-based SQL (FLOOR_SQL), one transaction each."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    timings = {}
    for name, sql in FLOOR_SQL:
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(sql), {"now": NOW})
        timings[name] = time.perf_counter() - start
    engine.dispose()
    return timings


# Bare copies of the planner's tables: columns only (CREATE TABLE ... AS ... WITH NO DATA
# keeps no index, key, default or NOT NULL).
BARE = ("events", "enrollments", "outbox")


def limit(url: str, customers: int) -> dict[str, float]:
    """The planner's rows into bare tables, by the database alone (see --limit)."""
    import sqlalchemy as sa

    from dripper.store import open_store

    store = open_store(url)
    postgres = store.dialect == "postgresql"
    with store.transaction() as conn:
        for table in BARE:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS bare_{table}")
            conn.exec_driver_sql(
                f"CREATE TABLE bare_{table} AS SELECT * FROM {table} WHERE false"
            )
    now = NOW
    offer = NOW + timedelta(days=14)
    news = NOW + timedelta(days=1, hours=9)
    event_cols = ("id", "customer_id", "type", "at", "data", "recorded_at")
    enrollment_cols = ("id", "customer_id", "campaign", "occurrence", "enrolled_at",
                       "event_id", "status")  # fmt: skip
    outbox_cols = ("enrollment_id", "customer_id", "campaign", "occurrence", "step", "due_at",
                   "next_attempt_at", "status", "reason", "variant", "created_at",
                   "updated_at")  # fmt: skip

    def events() -> Iterator[tuple[Any, ...]]:
        for i in range(1, customers + 1):
            yield (i, i, "purchase", now, {"amount": 20 + i % 30}, now)

    def welcome() -> Iterator[tuple[Any, ...]]:
        for i in range(1, customers + 1):
            yield (i, i, "welcome", f"event:{i}", now, i, "active")

    def welcome_sends() -> Iterator[tuple[Any, ...]]:
        for i in range(1, customers + 1):
            yield (i, i, "welcome", f"event:{i}", "thank-you", now, now, "planned", None,
                   None, now, now)  # fmt: skip
            yield (i, i, "welcome", f"event:{i}", "second-sale", offer, offer, "planned",
                   None, i % 2, now, now)  # fmt: skip

    def newsletter() -> Iterator[tuple[Any, ...]]:
        for i in range(1, customers + 1):
            yield (customers + i, i, "value-newsletter", "run:2027-01-05", news, None, "active")

    def newsletter_sends() -> Iterator[tuple[Any, ...]]:
        for i in range(1, customers + 1):
            yield (customers + i, i, "value-newsletter", "run:2027-01-05", "edition", news,
                   news, "planned", None, None, now, now)  # fmt: skip

    def write(conn: Any, table: str, columns: tuple[str, ...], rows: Any) -> None:
        if postgres:
            from dripper.store.copy import copy_rows

            copy_rows(conn, f"bare_{table}", columns, rows)
            return
        from dripper.store.tracking import _sqlite_time

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return _sqlite_time(value)
            return json.dumps(value) if isinstance(value, dict) else value

        marks = ", ".join("?" * len(columns))
        driver = conn.connection.driver_connection
        driver.executemany(
            f"INSERT INTO bare_{table} ({', '.join(columns)}) VALUES ({marks})",
            ([plain(v) for v in row] for row in rows),
        )

    timings = {}
    for phase, parts in (
        ("purchases", [("events", event_cols, events), ("enrollments", enrollment_cols,
                       welcome), ("outbox", outbox_cols, welcome_sends)]),
        ("newsletter", [("enrollments", enrollment_cols, newsletter),
                        ("outbox", outbox_cols, newsletter_sends)]),
    ):  # fmt: skip
        start = time.perf_counter()
        with store.transaction() as conn:
            for table, columns, rows in parts:
                write(conn, table, columns, rows())
        timings[f"{phase}_limit_s"] = time.perf_counter() - start
    with store.transaction() as conn:
        for table in BARE:
            conn.execute(sa.text(f"DROP TABLE bare_{table}"))
    store.close()
    return timings


def fresh_pg() -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench WITH (FORCE)")
        conn.exec_driver_sql("CREATE DATABASE dripper_bench")
    admin.dispose()


def child(phase: str, url: str, customers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--url", url, "--customers", str(customers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--floor", action="store_true", help="PostgreSQL: the same rows by set-based SQL"
    )
    parser.add_argument(
        "--limit", action="store_true", help="the ratio to the database's limit (issue 14)"
    )
    parser.add_argument(
        "--phase", choices=["setup", "plan", "floor", "limit"], help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "setup":
        setup(args.url, args.customers)
        print("{}")
        return
    if args.phase == "plan":
        print(json.dumps(plan(args.url, args.customers)))
        return
    if args.phase == "floor":
        print(json.dumps(floor(args.url)))
        return
    if args.phase == "limit":
        print(json.dumps(limit(args.url, args.customers)))
        return

    n = args.customers
    if args.floor:
        fresh_pg()
        child("setup", PG_URL, n)
        timings = child("floor", PG_URL, n)
        total = sum(timings.values())
        print(f"{n:,} customers: the purchases phase's rows by set-based SQL on PostgreSQL")
        for name, seconds in timings.items():
            print(f"  {name:<28} {seconds:6.1f} s")
        print(f"  {'in all':<28} {total:6.1f} s = {n / total:,.0f} customers/s")
        drop_pg()
        return
    with tempfile.TemporaryDirectory() as tmp:
        targets = []
        if args.db in ("sqlite", "both"):
            targets.append(("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}"))
        if args.db in ("postgresql", "both"):
            targets.append(("PostgreSQL", PG_URL))
        print(f"{n:,} customers, one purchase each; then one newsletter run to all of them")
        for name, url in targets:
            if name == "PostgreSQL":
                fresh_pg()
            start = time.perf_counter()
            child("setup", url, n)
            setup_s = time.perf_counter() - start
            bound = child("limit", url, n) if args.limit else {}
            r = child("plan", url, n)
            if bound:
                purchases = r["events_s"] / bound["purchases_limit_s"]
                newsletter = r["schedule_s"] / bound["newsletter_limit_s"]
                print(
                    f"{name:<11} limit: purchases {bound['purchases_limit_s']:6.1f} s, "
                    f"newsletter {bound['newsletter_limit_s']:6.1f} s | planner / limit: "
                    f"purchases {purchases:5.2f}, newsletter {newsletter:5.2f}"
                )
            print(
                f"{name:<11} set-up {setup_s:6.1f} s | purchases -> enrollments + outbox: "
                f"{r['events_s']:6.1f} s = {n / r['events_s']:9,.0f} customers/s | "
                f"newsletter run: {r['schedule_s']:6.1f} s = {n / r['schedule_s']:9,.0f}/s | "
                f"outbox rows {int(r['outbox_rows']):,} | peak RSS {r['peak_rss_mb']:.0f} MB"
            )
            cores = os.cpu_count() or 1
            for phase, key in (("purchases", "events"), ("newsletter", "schedule")):
                wall = r[f"{key}_s"]
                own, machine = r[f"{key}_own_cpu_s"], r[f"{key}_machine_cpu_s"]
                print(
                    f"{'':<11} {phase}: planner CPU {own:6.1f} s ({own / wall:4.0%} of a core), "
                    f"everything else {machine - own:6.1f} s; machine busy "
                    f"{machine / (cores * wall):4.0%} of {cores} cores"
                )
    if args.db in ("postgresql", "both"):
        drop_pg()


def drop_pg() -> None:
    if os.environ.get("BENCH_KEEP_PG") is not None:
        return
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench WITH (FORCE)")
    admin.dispose()


if __name__ == "__main__":
    main()

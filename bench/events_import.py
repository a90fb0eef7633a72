"""An order history through `dripper events import` (issue 22), against a raw COPY floor.

    python bench/events_import.py [--orders 1000000] [--customers 200000]
                                  [--db sqlite|postgresql|both] [--keep]

Generates a CSV of N rows (type,email,at,id,amount,currency,product,order): purchases
`shop:order:<n>` of C customers over three years (a new customer now and then, the rest
returning ones), amounts 12.50-60.00, ~4% in EUR (the company's currency, USD, left
empty otherwise), ~3% refunds of a recent purchase (`shop:refund:<n>`, data `order`, the
whole amount or half). Streamed to a temporary file, never held in memory.

For each database, in the same run:

- the import: `dripper --config X events import FILE --json` as a child process in a
  project made by `dripper init` whose [database] url is a fresh SQLite file or a fresh
  PostgreSQL schema (`options=-csearch_path=...`, like tests/conftest.py): wall seconds,
  the child's peak RSS (VmHWM) and CPU; then the same file again (every row a duplicate).
- the floor: the same rows as they end up stored (the customers with their final
  purchases, spend and first/last purchase; the events with their data) written into bare
  tables (no index, key or constraint) in one transaction by the database alone: binary
  COPY on PostgreSQL (store/copy.copy_rows), one executemany per table on SQLite. The
  rows are made from the generator in Python as they are written, as in bench/plan.py
  --limit. Also the same rows into the real, indexed tables (the database's own share of
  an import: what no importer in one session can beat).
- a check of what the import stored: N events, C customers, and each customer's
  purchases, total spent and first/last purchase equal to what the generator made, so
  the bench cannot report a fast wrong answer.

PostgreSQL: the database named by DRIPPER_TEST_PG_URL (default: postgres@127.0.0.1:5432/
test), a schema per import and per floor, dropped at the end (kept with --keep, like the
folder with the CSV and the projects).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = datetime(2023, 12, 1, tzinfo=UTC)
SPAN_S = 3 * 365 * 86400  # three years of orders
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # the import's clock (--now)
COMPANY = "USD"  # the scaffold's [company] currency
REFUNDS = 0.03
EUR = 0.04
PRODUCTS = ("Kenya AA", "Colombia Huila", "Ethiopia Guji", "Brazil Cerrado", "Decaf Blend")
HEADER = ("type", "email", "at", "id", "amount", "currency", "product", "order")

# A generated row: (type, customer number from 0, at, id, cents, currency ("" = the
# company's), product, the refunded order's id ("" for a purchase)).
Order = tuple[str, int, datetime, str, int, str, str, str]


def email(k: int) -> str:
    """As the file has it (mixed case: the import stores it lower-cased)."""
    return f"Customer.{k}@Example{k % 97}.com"


def amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def orders(n: int, c: int, seed: int = 22) -> Iterator[Order]:
    """N rows in time order; customer k first appears at about row k * N / C (all C
    appear), every other purchase is a returning customer's; a refund refunds one of the
    last 2,000 purchases not refunded yet, in that purchase's currency."""
    rng = random.Random(seed)
    known = 0
    recent: deque[tuple[str, int, int, str]] = deque(maxlen=2000)
    for i in range(n):
        at = START + timedelta(seconds=i * SPAN_S // n)
        if known < c and (i * c >= known * n or n - i <= c - known):
            k = known
            known += 1
        elif recent and rng.random() < REFUNDS:
            ref, k, cents, currency = recent[rng.randrange(len(recent))]
            recent.remove((ref, k, cents, currency))
            back = cents if rng.random() < 0.7 else cents // 2
            yield ("refund", k, at, f"shop:refund:{i + 1}", back, "", "", ref)
            continue
        else:
            k = rng.randrange(known)
        cents = rng.randrange(1250, 6001)
        currency = "EUR" if rng.random() < EUR else ""
        ext = f"shop:order:{i + 1}"
        recent.append((ext, k, cents, currency))
        yield ("purchase", k, at, ext, cents, currency, rng.choice(PRODUCTS), "")


def stored_data(row: Order) -> dict[str, str]:
    """The event's data as the import stores it: every non-empty cell but the known ones
    (type, email, at, id), as text."""
    _kind, _k, _at, _ext, cents, currency, product, ref = row
    data = {"amount": amount(cents)}
    if currency:
        data["currency"] = currency
    if product:
        data["product"] = product
    if ref:
        data["order"] = ref
    return data


@dataclass
class Expected:
    """What the generator made, to check the import by: per customer [purchases, cents
    counted in the company's currency, first and last purchase]."""

    rows: int = 0
    purchases: int = 0
    refunds: int = 0
    customers: dict[int, list[Any]] = field(default_factory=dict)


def write_csv(path: Path, n: int, c: int) -> Expected:
    expected = Expected()
    currency_of: dict[str, str] = {}  # open purchases' currencies (refunds need them)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(HEADER)
        for row in orders(n, c):
            kind, k, at, ext, cents, currency, product, ref = row
            out.writerow(
                (kind, email(k), at.strftime("%Y-%m-%dT%H:%M:%SZ"), ext, amount(cents),
                 currency, product, ref)
            )  # fmt: skip
            expected.rows += 1
            mine = expected.customers.setdefault(k, [0, 0, None, None])
            if kind == "purchase":
                expected.purchases += 1
                mine[0] += 1
                mine[1] += cents if not currency else 0
                mine[2] = mine[2] or at
                mine[3] = at
                if len(currency_of) > 4000:  # a refund is of one of the last 2,000 purchases
                    currency_of.pop(next(iter(currency_of)))
                currency_of[ext] = currency
            else:
                expected.refunds += 1
                mine[1] -= cents if not currency_of.pop(ref) else 0
    return expected


# -- the import, a child process ------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu_s: float  # the child's user + system
    machine_s: float  # the whole machine's busy CPU meanwhile (the database's share too)
    summary: dict[str, Any]


def machine_busy() -> float:
    """The machine's busy CPU seconds so far, all cores (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


def dripper_import(project: Path, sheet: Path) -> Run:
    dripper = str(Path(sys.executable).with_name("dripper"))
    args = [dripper, "--config", str(project / "config.toml"), "--now", NOW.isoformat(),
            "events", "import", str(sheet), "--json"]  # fmt: skip
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy, start = machine_busy(), time.perf_counter()
        proc = subprocess.Popen(args, cwd=project, stdout=out, stderr=err)
        peak = 0
        while True:  # the child's own high-water mark, read until it exits (see peak_kib)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, peak_kib(proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        busy = machine_busy() - busy
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            sys.exit(f"dripper events import failed ({code}): {err.read().decode().strip()}")
        summary = json.loads(out.read())
    return Run(seconds, peak / 1024, usage.ru_utime + usage.ru_stime, busy, summary)


def peak_kib(pid: int) -> int:
    """The peak RSS of a running process (VmHWM, KiB; 0 once it has exited).

    Not wait4's ru_maxrss: Linux carries the high-water mark of the memory a process had
    before exec over to the program it runs, and a child that Python forks or vforks
    starts with all of this process's memory, so ru_maxrss reports the larger of the two
    (this process, holding the expected totals of every customer, is the larger at 1M
    rows). VmHWM belongs to the child's program alone; it is read every 20 ms, so at
    most the last 20 ms before the exit go unseen."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def make_project(folder: Path, url: str) -> Path:
    dripper = str(Path(sys.executable).with_name("dripper"))
    subprocess.run([dripper, "init", str(folder)], check=True, capture_output=True)
    config = folder / "config.toml"
    text, count = re.subn(
        r'(?m)^url = "sqlite:///dripper.db"', f"url = {json.dumps(url)}", config.read_text()
    )
    assert count == 1, "the scaffold's [database] url line moved"
    config.write_text(text)
    return folder


# -- the floor ------------------------------------------------------------------------------

CUSTOMER_COLUMNS = ("id", "email", "first_name", "last_name", "tags", "attributes", "status",
                    "purchases", "total_spent_cents", "first_purchase_at", "last_purchase_at",
                    "created_at", "updated_at")  # fmt: skip
EVENT_COLUMNS = ("id", "customer_id", "type", "at", "data", "recorded_at", "ext_id")


def customer_rows(expected: Expected) -> Iterator[tuple[Any, ...]]:
    for k in range(len(expected.customers)):
        n, cents, first, last = expected.customers[k]
        yield (k + 1, email(k).lower(), "", "", [], {}, "subscribed", n, cents, first, last,
               NOW, NOW)  # fmt: skip


def event_rows(n: int, c: int) -> Iterator[tuple[Any, ...]]:
    for i, row in enumerate(orders(n, c), start=1):
        yield (i, row[1] + 1, row[0], row[2], stored_data(row), NOW, row[3])


def floor(url: str, n: int, c: int, expected: Expected) -> dict[str, float]:
    """The rows into bare tables, then into the real (indexed) ones; seconds of each, and
    of making the rows alone (the generator, in Python)."""
    from dripper.store import open_store
    from dripper.store.tracking import _sqlite_time

    store = open_store(url)
    store.ensure_schema()
    postgres = store.dialect == "postgresql"
    with store.transaction() as conn:
        for table in ("customers", "events"):
            conn.exec_driver_sql(f"CREATE TABLE bare_{table} AS SELECT * FROM {table} WHERE 1=0")

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return _sqlite_time(value)
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"))
        return value

    def write(conn: Any, table: str, columns: tuple[str, ...], rows: Iterator[Any]) -> None:
        if postgres:
            from dripper.store.copy import copy_rows

            copy_rows(conn, table, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        conn.connection.driver_connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            ([plain(v) for v in row] for row in rows),
        )

    timings = {}
    start = time.perf_counter()
    for _ in customer_rows(expected):
        pass
    for _ in event_rows(n, c):
        pass
    timings["making_s"] = time.perf_counter() - start
    for name, prefix in (("bare_s", "bare_"), ("indexed_s", "")):
        start = time.perf_counter()
        with store.transaction() as conn:
            write(conn, f"{prefix}customers", CUSTOMER_COLUMNS, customer_rows(expected))
            write(conn, f"{prefix}events", EVENT_COLUMNS, event_rows(n, c))
        timings[name] = time.perf_counter() - start
    store.close()
    return timings


# -- the check ------------------------------------------------------------------------------


def check(url: str, expected: Expected, first: Run, again: Run) -> list[str]:
    """What is wrong with what the import stored and said (nothing, one hopes)."""
    from dripper.store import open_store
    from dripper.store.schema import customers, events

    problems = []
    n = expected.rows
    one, two = first.summary, again.summary
    said = (one["recorded"], one["duplicates"], one["bad_rows_skipped"], two["recorded"],
            two["duplicates"])  # fmt: skip
    if said != (n, 0, 0, 0, n):
        problems.append(f"recorded/duplicates/bad, then recorded/duplicates: {said}, not "
                        f"{(n, 0, 0, 0, n)}")  # fmt: skip
    if first.summary["warnings"]:
        problems.append(f"{first.summary['warnings']} warning(s) (none expected)")
    store = open_store(url)
    c = customers.c
    with store.reading() as conn:
        by_type: dict[str, int] = dict(
            conn.execute(sa.select(events.c.type, sa.func.count()).group_by(events.c.type)).all()
        )
        if by_type != {"purchase": expected.purchases, "refund": expected.refunds}:
            problems.append(f"events by type {by_type}, expected {expected.purchases} "
                            f"purchases and {expected.refunds} refunds")  # fmt: skip
        keyed = conn.execute(sa.select(sa.func.count()).where(events.c.ext_id.is_not(None)))
        if keyed.scalar_one() != n:
            problems.append("events without their id")
        wanted = [c.email, c.purchases, c.total_spent_cents, c.first_purchase_at]
        found = conn.execute(sa.select(*wanted, c.last_purchase_at, c.spend_percentile)).all()
    store.close()
    if len(found) != len(expected.customers):
        problems.append(f"{len(found)} customers, expected {len(expected.customers)}")
    want = {email(k).lower(): tuple(v) for k, v in expected.customers.items()}
    wrong = [r for r in found if tuple(r[1:5]) != want.get(r[0])]
    if wrong:
        r = wrong[0]
        problems.append(f"{len(wrong)} customer(s) wrong, like {tuple(r)} (expected "
                        f"{want.get(r[0])})")  # fmt: skip
    if sum(r.purchases for r in found) != expected.purchases:
        problems.append("the sum of purchases is not the number of purchase rows")
    if any(r.spend_percentile is None for r in found):
        problems.append("customers without a spend percentile (the ranking did not run)")
    return problems


# -- PostgreSQL schemas ---------------------------------------------------------------------


class Schemas:
    """Fresh schemas in the test database, each reached by its own URL."""

    def __init__(self) -> None:
        self.base = sa.make_url(os.environ.get("DRIPPER_TEST_PG_URL", DEFAULT_PG_URL))
        self.admin = sa.create_engine(self.base, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def fresh(self, what: str) -> str:
        name = f"bench_{what}_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        self.made.append(name)
        url = self.base.update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '10s'")
            for name in self.made:
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        self.made = []
        self.admin.dispose()


# -- main -----------------------------------------------------------------------------------


def bench(
    name: str,
    urls: Callable[[str], str],
    work: Path,
    sheet: Path,
    args: argparse.Namespace,
    expected: Expected,
) -> dict[str, Any]:
    n, c = args.orders, args.customers
    url = urls("import")
    project = make_project(work / f"project-{name.lower()}", url)
    first = dripper_import(project, sheet)
    again = dripper_import(project, sheet)
    problems = check(url, expected, first, again)
    if problems:
        sys.exit(f"{name}: the import stored a wrong answer:\n  " + "\n  ".join(problems))
    limits = floor(urls("floor"), n, c, expected)
    ratio = first.seconds / limits["bare_s"]
    result = {
        "db": name,
        "orders": n,
        "customers": c,
        "import_s": first.seconds,
        "rows_per_s": n / first.seconds,
        "import_cpu_s": first.cpu_s,
        "machine_cpu_s": first.machine_s,
        "peak_rss_mb": first.rss_mb,
        "reimport_s": again.seconds,
        "reimport_rss_mb": again.rss_mb,
        "floor_s": limits["bare_s"],
        "floor_making_s": limits["making_s"],
        "indexed_floor_s": limits["indexed_s"],
        "ratio": ratio,
        "ratio_indexed": first.seconds / limits["indexed_s"],
    }
    print(
        f"{name:<10} import {first.seconds:7.1f} s = {n / first.seconds:7,.0f} rows/s "
        f"(CPU: dripper {first.cpu_s:.1f} s, machine {first.machine_s:.1f} s), peak RSS "
        f"{first.rss_mb:4.0f} MB | re-import {again.seconds:6.1f} s, {again.rss_mb:4.0f} MB\n"
        f"{'':<10} floor: bare tables {limits['bare_s']:6.1f} s (making the rows "
        f"{limits['making_s']:.1f} s of it), indexed tables {limits['indexed_s']:6.1f} s | "
        f"import / floor {ratio:4.1f}x (/ indexed {result['ratio_indexed']:4.1f}x) | checked",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="rows in the file")
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the files and the schemas")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if not 0 < args.customers <= args.orders:
        parser.error("--customers must be between 1 and --orders")
    work = Path(tempfile.mkdtemp(prefix="dripper-bench-events-"))
    schemas = Schemas() if args.db in ("postgresql", "both") else None
    results = []
    try:
        sheet = work / "orders.csv"
        start = time.perf_counter()
        expected = write_csv(sheet, args.orders, args.customers)
        print(
            f"{args.orders:,} rows ({expected.purchases:,} purchases, {expected.refunds:,} "
            f"refunds) of {len(expected.customers):,} customers, "
            f"{sheet.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - start:.1f}"
            f" s, in {work}",
            flush=True,
        )
        if args.db in ("sqlite", "both"):

            def sqlite(what: str) -> str:
                return f"sqlite:///{work}/{what}.db"

            results.append(bench("SQLite", sqlite, work, sheet, args, expected))
        if schemas is not None:
            results.append(bench("PostgreSQL", schemas.fresh, work, sheet, args, expected))
    finally:
        if args.keep:
            kept = ", schemas " + ", ".join(schemas.made) if schemas and schemas.made else ""
            print(f"kept {work}{kept}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if schemas is not None:
                schemas.drop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The hit writer alone: what classifying and storing opens and clicks costs, without HTTP,
so a change to the writer's database work can be measured apart from `serve`'s noise.

    .venv/bin/python bench/writer.py [--db sqlite|postgresql] [--deliveries 100000]
                                     [--batches 60] [--runs 3]

The shop of `bench/serve.py` (N sent deliveries) is seeded once. Then, per run, on a fresh
copy of it (a file copy on SQLite, a template database on PostgreSQL):
`dripper.services.hits.record_hits` in batches of 500, as the writer process gets them,
first 500 x B opens by a person, then 500 x B clicks by a person (each implies an open),
every hit on a different email. Each hit is a first open or click, as in a newsletter's
first hours. Prints the CPU time per hit of this process (the classifying, the driver and,
on SQLite, the database) and of the PostgreSQL server (from /proc), best of the runs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

# The shop and its seeding are bench/serve.py's.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as bench_serve

from dripper.engine.hits import HitKind
from dripper.services.hits import Hit, record_hits
from dripper.store import open_store

TEMPLATE = "dripper_bench_writer"
RUN = "dripper_bench_writer_run"


def postgres_cpu() -> float:
    return bench_serve.cpu_seconds()["postgres"]


def admin() -> sa.Engine:
    return sa.create_engine(bench_serve.PG_ADMIN, isolation_level="AUTOCOMMIT")


def seed(kind: str, folder: Path, deliveries: int) -> tuple[str, list[str]]:
    """The seeded shop's URL (SQLite: a file; PostgreSQL: a template database)."""
    url = bench_serve.database(kind, folder)
    sends = bench_serve.seed(url, deliveries)
    bench_serve.claim(url, sends)
    ids = list(sends.values())
    if kind == "postgresql":
        engine = admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {TEMPLATE} TEMPLATE dripper_bench_serve")
            conn.exec_driver_sql("DROP DATABASE dripper_bench_serve WITH (FORCE)")
        engine.dispose()
    return url, ids


def fresh(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        run = folder / "run.db"
        shutil.copy(folder / "bench.db", run)
        for suffix in ("-wal", "-shm"):
            Path(f"{run}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{run}"
    engine = admin()
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {RUN} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {RUN} TEMPLATE {TEMPLATE}")
    engine.dispose()
    return bench_serve.PG_URL.replace("dripper_bench_serve", RUN)


def batches(ids: list[str], kind: HitKind, start: int, count: int) -> list[list[Hit]]:
    at = bench_serve.SENT_AT + timedelta(days=1)
    url = "https://acme.test/shop" if kind is HitKind.CLICK else None
    return [
        [
            Hit(kind, delivery, at + timedelta(seconds=b, microseconds=i), "GET",
                bench_serve.BROWSER, "203.0.113.9", url)
            for i, delivery in enumerate(ids[start + b * 500 : start + (b + 1) * 500])
        ]
        for b in range(count)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if 2 * 500 * args.batches > args.deliveries:
        sys.exit("--deliveries must hold 1,000 hits per batch (opens and clicks apart)")
    found: dict[str, list[tuple[float, float]]] = {"open": [], "click": []}
    with tempfile.TemporaryDirectory(prefix="dripper-bench-writer-") as tmp:
        folder = Path(tmp)
        _url, ids = seed(args.db, folder, args.deliveries)
        random.Random(1).shuffle(ids)
        try:
            for _ in range(args.runs):
                store = open_store(fresh(args.db, folder))
                half = args.deliveries // 2
                for kind, start in ((HitKind.OPEN, 0), (HitKind.CLICK, half)):
                    work = batches(ids, kind, start, args.batches)
                    hits = sum(len(b) for b in work)
                    cpu, server = time.process_time(), postgres_cpu()
                    for batch in work:
                        record_hits(store, "acme.test", batch)
                    cpu, server = time.process_time() - cpu, postgres_cpu() - server
                    found[kind.value].append((cpu / hits * 1e6, server / hits * 1e6))
                store.close()
        finally:
            if args.db == "postgresql":
                engine = admin()
                with engine.connect() as conn:
                    for name in (RUN, TEMPLATE):
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                engine.dispose()
    report = {"db": args.db, "hits_per_kind": 500 * args.batches}
    for name, runs in found.items():
        best = min(runs, key=sum)
        report[f"{name}_us_per_hit"] = {"writer": round(best[0], 1), "postgres": round(best[1], 1)}
        report[f"{name}_runs"] = [[round(a, 1), round(b, 1)] for a, b in runs]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""`dripper customers predict` over a large shop (DESIGN 17; issue 30's target: 1M
customers and 5M purchases on PostgreSQL in under 60 s): the database's summaries, the
BG/NBD and Gamma-Gamma fits, the scoring and the writing of four values per customer.

The shop is built in the database with generate_series (a seeded random()): N customers,
each first buying 1 to 700 days before now and then 0 to many more times (5 purchases a
customer on average, a geometric count), amounts of 10 to 60, some on the same day.

    .venv/bin/python bench/predict.py [--customers 1000000] [--keep] [--reuse]

Prints the build's seconds and rows, then `dripper customers predict --json` run as its own
process: its wall time, its peak RSS (wait4), and the fit it reports; then the same work
in this process, phase by phase (the database's summaries, each fit, the scoring, the
writing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB = "dripper_bench_predict"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)

SEED = [
    "SELECT setseed(0.42)",
    """INSERT INTO customers (id, email, tags, attributes, status, created_at, updated_at)
       SELECT i, 'c' || i || '@example.com', '[]', '{}', 'subscribed',
              :now - interval '800 days', :now - interval '800 days'
       FROM generate_series(1, :n) AS i""",
    # The first purchase `age` days ago; k - 1 more at random times since (some land on
    # the first day, or on one another's: one purchase each day, summed).
    """INSERT INTO events (customer_id, type, at, data, recorded_at)
       SELECT c.i, 'purchase',
              :now - c.age * (CASE WHEN j = 1 THEN 1 ELSE random() END) * interval '1 day',
              jsonb_build_object('amount', round((10 + random() * 50)::numeric, 2)), :now
       FROM (SELECT i, 1 + floor(random() * 700) AS age,
                    1 + floor(-ln(1 - random()) * 4.5)::int AS k
             FROM generate_series(1, :n) AS i) c
       CROSS JOIN LATERAL generate_series(1, c.k) AS j""",
]


def build(url: str, customers: int) -> None:
    from dripper.store import open_store

    store = open_store(url)
    store.ensure_schema()
    with store.transaction() as conn:
        for statement in SEED:
            conn.execute(
                sa.text(statement.replace(":now", "CAST(:now AS timestamptz)")),
                {"n": customers, "now": NOW},
            )
        for table in ("customers", "events"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    store.close()


def run_predict(config: Path, now: datetime) -> tuple[float, float, bytes]:
    """`dripper customers predict --json` as its own process: seconds, peak RSS (MB)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(Path(sys.executable).parent / "dripper"), "--config", str(config), "--now",
         now.isoformat(), "customers", "predict", "--json"],
        stdout=subprocess.PIPE,
        env=os.environ,
    )  # fmt: skip
    assert child.stdout is not None
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    assert status == 0, output
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes there, KiB here
    return seconds, round(usage.ru_maxrss * unit / 2**20, 1), output


def measure_phases(url: str) -> dict[str, float]:
    """`services.predict.predict`'s steps, timed one by one in this process."""
    import numpy as np

    from dripper.engine import clv
    from dripper.store import open_store
    from dripper.store import predict as stored

    store = open_store(url)
    found: dict[str, float] = {}
    start = time.perf_counter()
    with store.reading() as conn:
        s = stored.summaries(conn, now=NOW, currency="USD")
    found["summaries"] = time.perf_counter() - start
    x, t_x, T = s.x, s.last_day - s.first_day, NOW.timestamp() / 86400 - s.first_day
    start = time.perf_counter()
    (cx, ctx, cT), weights = clv.compress(x, t_x, T)
    model = clv.fit_bgnbd(cx, ctx, cT, weights)
    found["bg_nbd_fit"] = time.perf_counter() - start
    start = time.perf_counter()
    alive = clv.p_alive(model, x, t_x, T)
    in_90 = clv.expected_purchases(model, 90.0, x, t_x, T)
    in_365 = clv.expected_purchases(model, 365.0, x, t_x, T)
    found["scoring"] = time.perf_counter() - start
    start = time.perf_counter()
    mean = np.where(x > 0, s.repeat_spent / np.where(x > 0, x, 1), 0.0)
    usable = (x > 0) & (mean > 0)
    spend = clv.fit_gamma_gamma(x[usable], mean[usable])
    value = in_365 * clv.expected_spend(spend, x, mean)
    found["gamma_gamma_fit"] = time.perf_counter() - start
    start = time.perf_counter()
    with store.transaction() as conn:
        stored.save(conn, s.ids, [alive, in_90, in_365, value])
    found["writing"] = time.perf_counter() - start
    store.close()
    return {k: round(v, 1) for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Measure a kept database.")
    args = parser.parse_args()
    from click.testing import CliRunner

    from dripper.cli import cli

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    built = 0.0
    if not args.reuse:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {DB}")
        start = time.perf_counter()
        build(PG_URL, args.customers)
        built = time.perf_counter() - start
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        rows = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("customers", "events")
        }
    engine.dispose()

    with tempfile.TemporaryDirectory(prefix="dripper-bench-predict-") as tmp:
        root = Path(tmp) / "shop"
        assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
        config = root / "config.toml"
        config.write_text(
            config.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{PG_URL}"')
        )
        # The first fit, then the daemon's next one a day later (nothing to clear then).
        seconds, rss, output = run_predict(config, NOW)
        refit_seconds, refit_rss, _ = run_predict(config, NOW + timedelta(days=1))
    fit = json.loads(output)
    phases = measure_phases(PG_URL)
    print(
        json.dumps(
            {
                "db": "postgresql",
                "rows": rows,
                "build_seconds": round(built, 1),
                "predict_seconds": round(seconds, 1),
                "predict_peak_rss_mb": rss,
                "refit_next_day_seconds": round(refit_seconds, 1),
                "refit_peak_rss_mb": refit_rss,
                "phases_seconds": phases,
                "fit": fit,
            },
            indent=2,
        )
    )
    if not args.keep:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin.dispose()


if __name__ == "__main__":
    main()

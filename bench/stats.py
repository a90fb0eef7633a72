"""`dripper stats` over a large shop: N sends and 2N tracking rows on PostgreSQL (the
DESIGN 11 target is 1M sends and 2M hits in under 2 s), built in the database with
generate_series so the set-up takes seconds, not the measurement's patience.

The shop: N/4 customers, each sent the welcome sequence's thank-you and second-sale offer
(two A/B variants) and two newsletter editions; a fifth of them bought a second time
after the offer (converted, with revenue); hits of every kind in a shop's mix (see the
tracking statement), spread over the sends; a thousand replies wait for an answer.

    .venv/bin/python bench/stats.py [--sends 1000000] [--runs 3]

Prints seconds for `collect` (what `dripper stats --json` computes; the first run on a
cold cache, then the best of the rest), with `--cadence 6w`, and for the whole
`dripper stats --json` process.
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
DB = "dripper_bench_stats"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)

# Each statement runs with :n = customers. Sends go out on day 0 (thank-you), day 14
# (offer), day 30 and 72 (editions); ids are dense, so outbox id = 4 * (customer - 1) + k.
SEED = [
    """INSERT INTO customers (id, email, first_name, last_name, tags, attributes, status,
         purchases, total_spent_cents, first_purchase_at, last_purchase_at, created_at,
         updated_at)
       SELECT i, 'c' || i || '@example.com', 'C' || i, '', '[]', '{}',
              CASE WHEN i % 50 = 0 THEN 'unsubscribed' ELSE 'subscribed' END,
              CASE WHEN i % 5 = 0 THEN 2 ELSE 1 END,
              CASE WHEN i % 5 = 0 THEN 5450 ELSE 2450 END + (i % 97) * 10,
              :t0, CASE WHEN i % 5 = 0 THEN :t0 + interval '16 days' ELSE :t0 END, :t0, :t0
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO events (id, customer_id, type, at, data, recorded_at)
       SELECT i, i, 'purchase', :t0, '{"amount": "24.50"}'::jsonb, :t0 FROM generate_series(1, :n) i
       UNION ALL
       SELECT :n + i, i, 'purchase', :t0 + interval '16 days', '{"amount": "30"}'::jsonb,
              :t0 + interval '16 days'
       FROM generate_series(5, :n, 5) i""",
    """INSERT INTO enrollments (id, customer_id, campaign, occurrence, enrolled_at, event_id,
         status, converted_at, converted_event_id, attributed_step)
       SELECT i, i, 'welcome', 'e' || i, :t0, i,
              CASE WHEN i % 5 = 0 THEN 'converted' ELSE 'completed' END,
              CASE WHEN i % 5 = 0 THEN :t0 + interval '16 days' END,
              CASE WHEN i % 5 = 0 THEN :n + i END,
              CASE WHEN i % 5 = 0 THEN 'second-sale' END
       FROM generate_series(1, :n) i
       UNION ALL
       SELECT :n + i, i, 'value-newsletter', 'run-1', :t0 + interval '30 days', NULL,
              'completed', NULL, NULL, NULL FROM generate_series(1, :n) i
       UNION ALL
       SELECT 2 * :n + i, i, 'value-newsletter', 'run-2', :t0 + interval '72 days', NULL,
              'completed', NULL, NULL, NULL FROM generate_series(1, :n) i""",
    """INSERT INTO outbox (id, enrollment_id, customer_id, campaign, occurrence, step, due_at,
         status, variant, message_id, attempts, next_attempt_at, sent_at, created_at,
         updated_at)
       SELECT 4 * (i - 1) + k,
              CASE WHEN k <= 2 THEN i WHEN k = 3 THEN :n + i ELSE 2 * :n + i END, i,
              CASE WHEN k <= 2 THEN 'welcome' ELSE 'value-newsletter' END,
              CASE WHEN k <= 2 THEN 'e' || i WHEN k = 3 THEN 'run-1' ELSE 'run-2' END,
              CASE k WHEN 1 THEN 'thank-you' WHEN 2 THEN 'second-sale' ELSE 'edition' END,
              d.at,
              CASE WHEN (i + k) % 100 = 0 THEN 'failed' ELSE 'sent' END,
              CASE WHEN k = 2 THEN i % 2 END,
              'm' || i || '-' || k || '@bench.example', 1, d.at, d.at, d.at, d.at
       FROM generate_series(1, :n) i
       CROSS JOIN generate_series(1, 4) k
       CROSS JOIN LATERAL (SELECT :t0 + make_interval(days =>
              CASE k WHEN 1 THEN 0 WHEN 2 THEN 14 WHEN 3 THEN 30 ELSE 72 END) AS at) d""",
    # 2 hits per send on average, spread over the sends (a prime stride), in a mix like a
    # shop's: 55% opens (a third by Apple's proxy), 35% clicks (1 in 17 by a scanner),
    # 8.5% one-click answers, 1% bounces, 0.25% replies, 0.2% unsubscribes, 0.05% complaints.
    """INSERT INTO tracking_events (outbox_id, customer_id, kind, at, machine, url, user_agent,
         data, campaign, step, variant)
       SELECT o.id, o.customer_id, h.kind, o.sent_at + interval '3 hours', h.machine,
              CASE WHEN h.kind = 'click' THEN 'https://shop.example/p' END, 'Mozilla/5.0',
              CASE WHEN h.kind = 'answer'
                   THEN '{"question": "first_bag", "answer": "great", "class": "human"}'::jsonb
                   ELSE '{"class": "human"}'::jsonb END,
              o.campaign, o.step, o.variant
       FROM generate_series(1, 8 * :n) j
       CROSS JOIN LATERAL (SELECT j % 2000 AS b) m
       CROSS JOIN LATERAL (SELECT
           CASE WHEN m.b < 1100 THEN 'open' WHEN m.b < 1800 THEN 'click'
                WHEN m.b < 1970 THEN 'answer' WHEN m.b < 1990 THEN 'bounce'
                WHEN m.b < 1995 THEN 'reply' WHEN m.b < 1999 THEN 'unsubscribe'
                ELSE 'complaint'
           END AS kind,
           (m.b < 1100 AND j % 3 = 0) OR (m.b BETWEEN 1100 AND 1799 AND j % 17 = 0)
             AS machine) h
       JOIN outbox o ON o.id = 1 + (j::bigint * 7919) % (4 * :n)""",
    # What the hit writer does as it goes (tracking.mark_firsts), for the hits above.
    """UPDATE outbox SET opened_at = f.at
       FROM (SELECT outbox_id, min(at) AS at FROM tracking_events
             WHERE kind = 'open' AND NOT machine GROUP BY outbox_id) f
       WHERE outbox.id = f.outbox_id""",
    """UPDATE outbox SET clicked_at = f.at
       FROM (SELECT outbox_id, min(at) AS at FROM tracking_events
             WHERE kind IN ('click', 'answer') AND NOT machine GROUP BY outbox_id) f
       WHERE outbox.id = f.outbox_id""",
    """INSERT INTO inbound_messages (message_key, kind, via, address, customer_id, outbox_id,
         subject, received_at)
       SELECT md5('r' || i), 'reply', 'imap', 'c' || i || '@example.com', i, 4 * (i - 1) + 1,
              'Re: Thank you', :t0 + interval '1 day'
       FROM generate_series(1, :n, greatest(:n / 1000, 1)) i""",
]


def build(url: str, customers: int) -> None:
    from dripper.store import open_store

    store = open_store(url)
    store.ensure_schema()
    t0 = NOW - timedelta(days=120)
    with store.transaction() as conn:
        for statement in SEED:
            conn.execute(
                sa.text(statement.replace(":t0", "CAST(:t0 AS timestamptz)")),
                {"n": customers, "t0": t0},
            )
        for table in ("customers", "events", "enrollments", "outbox", "tracking_events"):
            conn.exec_driver_sql(  # the sequences past the ids given above
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Measure a kept database.")
    args = parser.parse_args()
    from click.testing import CliRunner

    from dripper.campaigns import load_campaigns
    from dripper.cli import cli
    from dripper.config import load_config
    from dripper.services.stats import collect
    from dripper.store import open_store

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    built = 0.0
    if not args.reuse:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {DB}")
        start = time.perf_counter()
        build(PG_URL, args.sends // 4)
        built = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="dripper-bench-stats-") as tmp:
        root = Path(tmp) / "shop"
        assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
        config_path = root / "config.toml"
        config_path.write_text(
            config_path.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{PG_URL}"')
        )
        config = load_config(config_path)
        campaigns, _ = load_campaigns(config.campaigns_dir, config.templates_dir)
        store = open_store(PG_URL)
        with store.reading() as conn:
            counts = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("customers", "outbox", "tracking_events", "events", "enrollments")
            }
        timings: list[float] = []
        for _ in range(args.runs):
            start = time.perf_counter()
            report = collect(store, campaigns, now=NOW)
            timings.append(time.perf_counter() - start)
        cadence: list[float] = []
        for _ in range(args.runs):
            start = time.perf_counter()
            collect(store, campaigns, now=NOW, cadence=timedelta(weeks=6))
            cadence.append(time.perf_counter() - start)
        store.close()
        start = time.perf_counter()
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "dripper"),
                "--config",
                str(config_path),
                "--now",
                NOW.isoformat(),
                "stats",
                "--json",
            ],
            capture_output=True,
            env=os.environ,
            check=True,
        )
        command = time.perf_counter() - start
        json.loads(done.stdout)
    welcome = next(c for c in report["campaigns"] if c["campaign"] == "welcome")
    print(
        json.dumps(
            {
                "db": "postgresql",
                "rows": counts,
                "build_seconds": round(built, 1),
                "collect_seconds_first": round(timings[0], 2),
                "collect_seconds_best": round(min(timings[1:] or timings), 2),
                "with_cadence_seconds_best": round(min(cadence), 2),
                "dripper_stats_json_seconds": round(command, 2),
                "welcome_second_sale_row": welcome["steps"][1],
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

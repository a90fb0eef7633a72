"""Inbound mail classified and recorded per second: the corpus of tests/data/inbound/
repeated to N messages (each with a Message-ID of its own, so each is recorded), taken in
through the one path the IMAP poller, `POST /inbound` and `dripper inbound` share
(`Listener.take_in`), against the corpus's sends in a real database.

    .venv/bin/python bench/inbound.py [--db sqlite|postgresql] [--messages 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dripper_bench_inbound"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    from click.testing import CliRunner

    from dripper.cli import cli
    from dripper.config import load_config
    from dripper.services.listening import Listener
    from dripper.store import open_store
    from tests.support.inbound import CORPUS, NOW, configure, corpus, seed

    with tempfile.TemporaryDirectory(prefix="dripper-bench-inbound-") as tmp:
        root = Path(tmp) / "shop"
        assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
        if args.db == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench_inbound WITH (FORCE)")
                conn.exec_driver_sql("CREATE DATABASE dripper_bench_inbound")
            admin.dispose()
            url = PG_URL
        config_path = root / "config.toml"
        config_path.write_text(
            config_path.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{url}"')
        )
        configure(config_path)
        seed(url)
        config = load_config(config_path)
        store = open_store(url)
        listener = Listener(config, store, [])
        names = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
        messages = [
            corpus(names[i % len(names)], message_id=f"bench{i}@mx.example")
            for i in range(args.messages)
        ]
        kinds: Counter[str] = Counter()
        start = time.perf_counter()
        for raw in messages:
            kinds[listener.take_in(raw, via="pipe", now=NOW).kind.value] += 1
        seconds = time.perf_counter() - start
        store.close()
    print(
        json.dumps(
            {
                "db": args.db,
                "messages": args.messages,
                "seconds": round(seconds, 2),
                "per_second": round(args.messages / seconds, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "classes": dict(sorted(kinds.items())),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

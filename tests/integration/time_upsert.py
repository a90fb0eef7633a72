"""Time `Store.upsert_customers` by hand (not a test: timings do not belong in tests).

    .venv/bin/python -m tests.integration.time_upsert [ROWS] [DATABASE_URL]

Imports ROWS customers (default 100,000) into an empty SQLite file (or the given URL's
empty database), then the same rows again as updates, and prints both times.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dripper.customers.model import CustomerData
from dripper.store import open_store


def rows(count: int) -> list[CustomerData]:
    return [
        CustomerData(
            email=f"customer{n:07d}@example.com",
            first_name=f"First{n}",
            last_name=f"Last{n}",
            timezone="Europe/Berlin",
            locale="de",
            tags=("imported", "newsletter"),
            attributes={"birthday": "1990-05-17", "city": "Berlin", "likes": "espresso"},
        )
        for n in range(count)
    ]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(folder) / 'time.db'}"
        store = open_store(url)
        store.ensure_schema()
        data = rows(count)
        now = datetime.now(UTC)
        for label in ("insert", "update"):
            started = time.perf_counter()
            counts = store.upsert_customers(data, now=now)
            elapsed = time.perf_counter() - started
            print(f"{label}: {count:,} rows in {elapsed:.2f} s ({count / elapsed:,.0f}/s) {counts}")
        assert store.count_customers() == count
        store.close()


if __name__ == "__main__":
    main()

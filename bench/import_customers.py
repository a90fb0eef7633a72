"""Import N customers from a generated CSV into a fresh SQLite file, through the CLI.

    python bench/import_customers.py [--rows 100000] [--keep]

Reports the wall time and peak memory (RSS) of `dripper customers import` (target: under
20 s for 100k rows) and of a second import of the same file (every row an update).
To measure another tree of dripper, put it first on PYTHONPATH (`git archive` a commit).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZONES = ["Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "", "UTC"]
COFFEES = ["Kenya AA", "Colombia Huila", "Ethiopia Guji", ""]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "email",
                "first_name",
                "last_name",
                "timezone",
                "locale",
                "tags",
                "birthday",
                "favorite_coffee",
            ]
        )
        for i in range(rows):
            out.writerow(
                [
                    f"Customer.{i}@Example{i % 97}.com",
                    f"First{i}",
                    f"Last{i}",
                    rng.choice(ZONES),
                    rng.choice(["en", "en-US", "de", ""]),
                    rng.choice(["vip;espresso", "filter", ""]),
                    f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    rng.choice(COFFEES),
                ]
            )


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command, which must succeed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err)
        # wait4, not communicate(): the rusage of this child alone, not of all children.
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {err.read().decode().strip()}")
        print("   ", out.read().decode().strip())
    return elapsed, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    dripper = str(Path(sys.executable).with_name("dripper"))
    work = Path(tempfile.mkdtemp(prefix="dripper-bench-import-"))
    (work / "config.toml").write_text('[database]\nurl = "sqlite:///bench.db"\n')
    sheet = work / "customers.csv"
    write_csv(sheet, args.rows)
    size = os.path.getsize(sheet) / 1e6
    print(f"{args.rows:,} rows, {size:.1f} MB, SQLite, in {work}")
    for label in ("first import (all new):    ", "second import (all update):"):
        seconds, peak = timed([dripper, "customers", "import", str(sheet)], work)
        print(
            f"{label} {seconds:6.2f} s  {args.rows / seconds:9,.0f} rows/s  peak RSS {peak:6.0f} MB"
        )
    if not args.keep:
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()

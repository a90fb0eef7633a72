"""Duplicates raced from two processes at once are recorded once (DESIGN 12: a unique key
in the database, not a look-up before an insert), on both databases."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from dripper.store import Store
from dripper.store.schema import enrollments, events

ROOT = Path(__file__).resolve().parents[2]
COUNT = 120


def test_two_processes_recording_the_same_ids_record_each_once(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """Two processes record the same 120 purchases (same ids) at the same time: each is
    stored once, the two say so between them, and spend and enrollments match one set."""
    start = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.race_events", db_url, str(start), str(COUNT)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    start.touch()
    results = [racer.communicate(timeout=300) for racer in racers]
    for racer, (_out, err) in zip(racers, results, strict=True):
        assert racer.returncode == 0, err[-2000:]
    assert sum(int(out.strip()) for out, _ in results) == COUNT
    with store.reading() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
        welcomed = conn.execute(
            sa.select(sa.func.count())
            .select_from(enrollments)
            .where(enrollments.c.campaign == "welcome")
        ).scalar_one()
    assert stored == COUNT
    assert welcomed == 7  # one first purchase each for the seven racers' customers
    spent = sum(
        (c.total_spent for c in store.iter_customers()), start=Decimal(0)
    )
    assert spent == Decimal("2.50") * COUNT

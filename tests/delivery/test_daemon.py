"""`dripper run` as real processes against the fault-injecting SMTP server: killed with
SIGKILL at random moments and restarted, every email is still sent exactly once (except
those recorded as ambiguous) and none is lost or stuck; two daemons on one PostgreSQL
database share the outbox without sending anything twice; SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dripper.cli import cli
from dripper.store import Store, open_store
from dripper.store.schema import delivery_attempts, outbox
from tests.support.smtpserver import Fault, FaultyServer, use_smtp

SECRET = {"DRIPPER_SECRET": "test-secret-not-for-production"}


def make_project(root: Path, db_url: str, server: FaultyServer, *, lease: str = "3s") -> Path:
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    for name in ("value-newsletter", "referral-request", "birthday"):  # welcome only
        (root / "campaigns" / f"{name}.yaml").unlink()
    config = root / "config.toml"
    use_smtp(config, server)
    text = config.read_text()
    text = text.replace('url = "sqlite:///dripper.db"', f'url = "{db_url}"')
    text = text.replace("timeout = 60 ", "timeout = 10 ")
    text = text.replace('retry = ["5m", "30m", "2h", "6h"]', 'retry = ["1s"]')
    text = text.replace('lease = "15m"', f'lease = "{lease}"')
    text = text.replace("tick_seconds = 30", "tick_seconds = 1")
    text = text.replace("batch_size = 500", "batch_size = 50")
    config.write_text(text)
    return config


def buy(config: Path, count: int) -> Store:
    """`count` first purchases now: each plans a thank-you due at once."""
    from dripper.campaigns import load_campaigns
    from dripper.config import load_config
    from dripper.services.planning import Planner
    from dripper.store.ingest import NewEvent

    settings = load_config(config)
    campaigns, problems = load_campaigns(settings.campaigns_dir, settings.templates_dir)
    assert not problems
    store = open_store(settings.database_url)
    store.ensure_schema()
    now = datetime.now(UTC)
    events = (
        NewEvent(f"customer{i}@example.com", "purchase", now, {"amount": 10}) for i in range(count)
    )
    report = Planner(settings, store, campaigns).record_events(events, now=now)
    assert report.enrolled == count
    return store


def daemon(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dripper", "--config", str(config), "run"],
        cwd=config.parent,
        env={**os.environ, **SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def thank_yous(store: Store) -> list[sa.Row[tuple[object, ...]]]:
    with store.reading() as conn:
        return list(conn.execute(sa.select(outbox).where(outbox.c.step == "thank-you")))


def wait_until_all_sent(store: Store, deadline: float) -> None:
    while time.monotonic() < deadline:
        if all(r.status == "sent" for r in thank_yous(store)):
            return
        time.sleep(0.2)
    left = [(r.status, r.reason) for r in thank_yous(store) if r.status != "sent"]
    pytest.fail(f"{len(left)} emails not sent in time, e.g. {left[:3]}")


def stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    return err.decode()


def kill_at_random(config: Path, store: Store, rng: random.Random, kills: int) -> int:
    """Start a daemon and SIGKILL it 0.8-2 s later, `kills` times or until every email is
    sent; returns how many were killed (bench/chunk.py counts what they leave behind)."""
    done = 0
    for _ in range(kills):
        process = daemon(config)
        time.sleep(rng.uniform(0.8, 2.0))
        process.kill()
        process.wait()
        done += 1
        if all(r.status == "sent" for r in thank_yous(store)):
            break
    return done


def ambiguous_ids(store: Store) -> set[int]:
    """The sends a crash left possibly delivered (an attempt recorded as ambiguous)."""
    with store.reading() as conn:
        return set(
            conn.execute(
                sa.select(delivery_attempts.c.outbox_id).where(
                    delivery_attempts.c.outcome == "ambiguous"
                )
            ).scalars()
        )


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    # A slow reply to the final dot now and then, so kills also land mid-DATA.
    with FaultyServer(faults=[Fault("DOT", delay=0.02)]) as running:
        yield running


def test_sigkill_at_random_moments_loses_nothing_and_duplicates_only_ambiguous(
    tmp_path: Path, db_url: str, server: FaultyServer
) -> None:
    config = make_project(tmp_path / "shop", db_url, server)
    store = buy(config, 2000)
    try:
        kills = kill_at_random(config, store, random.Random(5), 6)
        final = daemon(config)
        wait_until_all_sent(store, time.monotonic() + 120)
        stop(final)

        rows = thank_yous(store)
        assert len(rows) == 2000
        assert all(r.status == "sent" for r in rows)  # none lost, none stuck
        ambiguous = ambiguous_ids(store)
        message_ids = {r.id: r.message_id for r in rows}
        assert len(set(message_ids.values())) == 2000
        for oid, mid in message_ids.items():
            seen = server.accepted[mid]
            if oid in ambiguous:
                assert seen >= 1, mid  # possibly delivered, then retried: maybe twice
            else:
                assert seen == 1, (mid, seen)  # exactly once
        assert set(server.accepted) == set(message_ids.values())
        assert kills >= 1
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_daemons_on_postgresql_send_each_email_once(tmp_path: Path, db_url: str) -> None:
    with FaultyServer() as server:
        config = make_project(tmp_path / "shop", db_url, server, lease="30s")
        store = buy(config, 5000)
        try:
            first, second = daemon(config), daemon(config)
            wait_until_all_sent(store, time.monotonic() + 180)
            stop(first)
            stop(second)
            rows = thank_yous(store)
            assert len(rows) == 5000
            assert sorted(server.accepted.values()) == [1] * 5000  # each Message-ID once
            assert set(server.accepted) == {r.message_id for r in rows}
            with store.reading() as conn:
                owners = conn.execute(
                    sa.select(sa.func.count(sa.distinct(delivery_attempts.c.id)))
                ).scalar_one()
            assert owners == 5000  # one attempt each: nothing claimed twice
        finally:
            store.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_daemon_on_a_sqlite_file_exits_with_a_clear_message(
    tmp_path: Path, db_url: str
) -> None:
    with FaultyServer() as server:
        config = make_project(tmp_path / "shop", db_url, server)
        store = buy(config, 10)
        try:
            first = daemon(config)
            wait_until_all_sent(store, time.monotonic() + 60)
            second = subprocess.run(
                [sys.executable, "-m", "dripper", "--config", str(config), "run"],
                env={**os.environ, **SECRET},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 2
            assert "another dripper daemon" in second.stderr
            assert "Traceback" not in second.stderr
            # Off a terminal the daemon logs one JSON object per line.
            records = [json.loads(line) for line in stop(first).splitlines() if line.strip()]
            messages = [r["msg"] for r in records]
            assert messages[0] == "started"
            assert messages[-1] == "stopped"
            passes = [r for r in records if r["msg"] == "pass"]
            assert sum(r["sent"] for r in passes) == 10
        finally:
            store.close()

"""The daemon rides out a database outage (issue 23): a PostgreSQL of the test's own is
stopped and started again under `dripper run` while it sends, and a start while the
database is down waits for it; a full disk on SQLite the same. Nothing is lost, nothing
sent twice that was not ambiguous, nothing waits out a lease, and the log says what
happened in a line, never a traceback."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.store import Store, open_store
from dripper.store.schema import delivery_attempts
from tests.delivery.test_daemon import SECRET, buy, make_project, thank_yous
from tests.support.pgcluster import Cluster, throwaway_cluster
from tests.support.smtpserver import Fault, FaultyServer

LEASE = "10m"  # far longer than any test: a send that waited out its lease fails the test


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as running:
        yield running


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    # A little slowness at the final dot, so an outage lands in the middle of sending.
    with FaultyServer(faults=[Fault("DOT", delay=0.01)]) as running:
        yield running


def start_daemon(config: Path, preexec: Callable[[], None] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dripper", "--config", str(config), "run"],
        cwd=config.parent,
        env={**os.environ, **SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def stop(daemon: subprocess.Popen[str]) -> str:
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=90)
    assert daemon.returncode == 0, err[-3000:]
    return err


def sent_count(server: FaultyServer) -> int:
    return len(server.accepted)


def each_sent_once(store: Store, server: FaultyServer, count: int) -> int:
    """Every planned email sent, exactly once unless recorded ambiguous; returns how many
    were ambiguous."""
    rows = thank_yous(store)
    assert len(rows) == count
    assert [r.status for r in rows if r.status != "sent"] == []
    with store.reading() as conn:
        ambiguous = set(
            conn.execute(
                sa.select(delivery_attempts.c.outbox_id).where(
                    delivery_attempts.c.outcome == "ambiguous"
                )
            ).scalars()
        )
    for row in rows:
        seen = server.accepted[row.message_id]
        assert seen >= 1, row.message_id
        if row.id not in ambiguous:
            assert seen == 1, (row.message_id, seen)
    return len(ambiguous)


def no_traceback(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    assert "bug in dripper" not in log, log[-3000:]


@pytest.mark.postgres
def test_postgresql_stopped_and_started_under_a_sending_daemon(
    tmp_path: Path, cluster: Cluster, server: FaultyServer
) -> None:
    """PostgreSQL goes away for a few seconds in the middle of 1,500 sends: the daemon
    logs the outage and carries on when it is back; every email goes out once, none
    becomes ambiguous (the outcomes it knew are recorded, what it held and never sent is
    given back), and it all finishes long before a lease could expire."""
    config = make_project(tmp_path / "shop", cluster.url, server, lease=LEASE)
    store = buy(config, 1500)
    daemon = start_daemon(config)
    try:
        wait_for(lambda: sent_count(server) >= 300, 120, "the first 300 sends")
        store.engine.dispose()
        cluster.stop()
        time.sleep(6)
        cluster.start()
        wait_for(lambda: sent_count(server) >= 1500, 180, "every send after the outage")
        store.engine.dispose()
        wait_for(
            lambda: all(r.status == "sent" for r in thank_yous(store)), 60, "the last records"
        )
    finally:
        log = stop(daemon) if daemon.poll() is None else daemon.stderr.read()  # type: ignore[union-attr]
    assert each_sent_once(store, server, 1500) == 0
    assert "database unreachable, retrying in" in log
    no_traceback(log)
    store.close()


@pytest.mark.postgres
def test_a_daemon_started_while_the_database_is_down_waits_for_it(
    tmp_path: Path, cluster: Cluster, server: FaultyServer
) -> None:
    """Started while PostgreSQL is down, the daemon waits (a log line per try), then sends
    everything once it answers; SIGTERM while waiting exits 0."""
    config = make_project(tmp_path / "shop", cluster.url, server, lease=LEASE)
    store = buy(config, 50)
    store.engine.dispose()
    cluster.stop()
    daemon = start_daemon(config)
    try:
        time.sleep(4)
        assert daemon.poll() is None  # still there, waiting
        cluster.start()
        wait_for(lambda: sent_count(server) >= 50, 120, "the sends once it is back")
    finally:
        log = stop(daemon)
    assert "database unreachable at start, retrying in" in log
    no_traceback(log)
    assert each_sent_once(store, server, 50) == 0
    store.close()
    cluster.stop()
    waiting = start_daemon(config)
    time.sleep(2)
    no_traceback(stop(waiting))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_full_disk_on_sqlite_is_ridden_out(
    tmp_path: Path, db_url: str, server: FaultyServer
) -> None:
    """SQLite cannot grow its files (the daemon may write no file past a size: what a full
    disk looks like to SQLite): the daemon logs the outage and goes on once there is room
    again; every email goes out once."""
    config = make_project(tmp_path / "shop", db_url, server, lease=LEASE)
    store = buy(config, 600)
    database = Path(db_url.removeprefix("sqlite:///"))
    store.close()
    room = max(database.stat().st_size, 1 << 20) + 64 * 1024

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))

    daemon = start_daemon(config, preexec=small_disk)
    try:
        wait_for(lambda: bool(daemon.stderr) and sent_count(server) > 0, 60, "a first send")
        wait_for(lambda: _stalled(server), 120, "the disk to fill")
        resource.prlimit(
            daemon.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        wait_for(lambda: sent_count(server) >= 600, 180, "every send once there is room")
        store = open_store(db_url)
        wait_for(
            lambda: all(r.status == "sent" for r in thank_yous(store)), 60, "the last records"
        )
    finally:
        log = stop(daemon)
    assert "database unreachable, retrying in" in log
    assert "full" in log or "I/O error" in log  # SQLite says either, by where it hit
    no_traceback(log)
    assert each_sent_once(store, server, 600) == 0
    store.close()


def _stalled(server: FaultyServer, _seen: list[int] = []) -> bool:  # noqa: B006
    """No send in the last two seconds: the daemon stopped for its full disk."""
    count = sent_count(server)
    _seen.append(count)
    time.sleep(2)
    return sent_count(server) == count

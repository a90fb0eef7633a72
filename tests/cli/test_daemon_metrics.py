"""A daemon you can watch (DESIGN 14): `dripper run --metrics HOST:PORT`, a real daemon
process on each database, scraped over HTTP: /metrics counts the sends of its passes and
/healthz answers 200 while passes complete; a port in use is one line and exit 2; the
health answer turns 503 when passes stop or the database does not answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dripper.cli.watch import DaemonMetrics
from dripper.services.report import Report
from tests.cli.conftest import Project

PROGRAM = str(Path(sys.executable).parent / "dripper")
ENV = {**os.environ, "DRIPPER_SECRET": "daemon-metrics-secret-0123456789"}
NOW = "2027-01-04T15:00:00Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_daemon_is_watched_over_http(project: Project) -> None:
    """A purchase, the daemon with --metrics: /metrics shows the thank-you sent, the pass
    timed, the backlog; /healthz is 200; SIGTERM stops it (exit 0)."""
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("tick_seconds = 30", "tick_seconds = 1"))
    assert project.run("--now", NOW, "event", "purchase", "ada@example.com").exit_code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PROGRAM, "--config", str(config), "--now", NOW, "run", "--metrics", f"127.0.0.1:{port}"]
    log = (project.root / "daemon.log").open("wb")
    daemon = subprocess.Popen(args, env=ENV, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            try:
                found = samples(url)
            except httpx.HTTPError:
                found = {}
            if found.get(("dripper_sends_total", (("outcome", "sent"),)), 0) >= 1:
                break
            time.sleep(0.2)
        assert found[("dripper_sends_total", (("outcome", "sent"),))] >= 1
        assert found[("dripper_pass_seconds_count", ())] >= 1
        assert found[("dripper_last_pass_timestamp_seconds", ())] > 0
        assert ("dripper_due_backlog", ()) in found
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        again = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2
        assert f"--metrics 127.0.0.1:{port}: cannot listen there" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        log.close()


def test_health_turns_503_when_passes_stop_or_the_database_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three ticks without a finished pass: "stuck"; a database that does not answer:
    "database unavailable"; a pass just done: "ok"."""
    down = False

    def ping() -> None:
        if down:
            raise OSError("connection refused")

    metrics = DaemonMetrics(10, ping)
    clock = [1000.0]
    monkeypatch.setattr("dripper.cli.watch.time.monotonic", lambda: clock[0])
    metrics.started = clock[0]
    metrics.passed(Report(sent=2), 0.5, {"due": 3}, mailbox=False)
    assert metrics.health()[0] == 200
    clock[0] += 31
    assert metrics.health() == (503, {"status": "stuck", "last_pass_seconds_ago": 31.0})
    metrics.passed(Report(), 0.1, {}, mailbox=False)
    down = True
    assert metrics.health() == (503, {"status": "database unavailable"})


def test_metrics_needs_the_daemon(project: Project) -> None:
    """`--metrics` with `--once`: exit 2, one line."""
    result = project.run("run", "--once", "--metrics", "127.0.0.1:9")
    assert result.exit_code == 2
    assert "--metrics watches the daemon: leave out --once" in result.output

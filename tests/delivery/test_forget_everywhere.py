"""Forget means forget (issue 23): no address in what the daemon logs (a delivery's id
instead, and the server's reply without the address it quotes); `forget` removes the
customer's `.eml` files; on SQLite nothing of the address stays in the database files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import cli
from tests.support.smtpserver import Fault, FaultyServer, use_smtp

SECRET = {"DRIPPER_SECRET": "test-secret-not-for-production"}
NOW = "2027-01-04T15:00:00Z"


def project(root: Path, db_url: str) -> Path:
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    config = root / "config.toml"
    text = config.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{db_url}"')
    text = text.replace("tick_seconds = 30", "tick_seconds = 1")
    config.write_text(text)
    return config


def dripper(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dripper", "--config", str(config), *args],
        cwd=config.parent,
        env={**os.environ, **SECRET},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_daemon_logs_deliveries_not_addresses(tmp_path: Path, db_url: str) -> None:
    """A relay that defers every email, quoting the recipient in its reply: the daemon's
    log names each delivery and the reply without the address, never the address."""
    address = "ada.lovelace@example.com"
    defer = Fault("RCPT", f"451 4.3.0 <{address}>: try again later")
    with FaultyServer(faults=[defer]) as sink:
        config = project(tmp_path / "shop", db_url)
        use_smtp(config, sink)
        bought = dripper(config, "event", "purchase", address, "--data", '{"amount": 5}')
        assert bought.returncode == 0, bought.stderr
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dripper", "--config", str(config), "run"],
            cwd=config.parent,
            env={**os.environ, **SECRET},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not defer.used:
            time.sleep(0.2)
        time.sleep(1.5)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    logged = out + err
    assert "retrying at" in logged
    assert "delivery " in logged
    assert address not in logged
    assert "ada.lovelace" not in logged


def test_forget_removes_the_customers_email_files(tmp_path: Path, db_url: str) -> None:
    """The file transport's `.eml` files of a forgotten customer go with them; another
    customer's stay."""
    config = project(tmp_path / "shop", db_url)
    for who in ("ada@example.com", "grace@example.com"):
        assert dripper(config, "--now", NOW, "event", "purchase", who).returncode == 0
    sent = dripper(config, "--now", NOW, "run", "--once")
    assert sent.returncode == 0, sent.stderr
    outbox = config.parent / "outbox"
    assert len(list(outbox.glob("*.eml"))) == 2
    forgot = dripper(config, "customers", "forget", "ada@example.com", "--yes")
    assert forgot.returncode == 0, forgot.stderr
    left = [p.read_bytes() for p in outbox.glob("*.eml")]
    assert len(left) == 1
    assert b"grace@example.com" in left[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_copy_of_a_forgotten_address_stays_in_the_sqlite_files(
    tmp_path: Path, db_url: str
) -> None:
    """After `forget` neither the database file nor its write-ahead log holds the address
    or the name (secure_delete zeroes the rows, the log is checkpointed and truncated)."""
    config = project(tmp_path / "shop", db_url)
    assert dripper(config, "--now", NOW, "customers", "import", "customers.csv").returncode == 0
    bought = dripper(config, "--now", NOW, "event", "purchase", "zoe@example.com")
    assert bought.returncode == 0
    assert dripper(config, "--now", NOW, "run", "--once").returncode == 0
    database = Path(db_url.removeprefix("sqlite:///"))
    files = [database, database.with_name(database.name + "-wal")]
    assert any(b"zoe@example.com" in p.read_bytes() for p in files if p.exists())
    assert dripper(config, "customers", "forget", "zoe@example.com", "--yes").returncode == 0
    for path in files:
        if path.exists():
            data = path.read_bytes()
            assert b"zoe@example.com" not in data, path
            assert "Ørsted".encode() not in data, path

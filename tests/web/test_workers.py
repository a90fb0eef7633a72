"""`dripper serve --workers N` on PostgreSQL: several processes answer on one port, each
with its own app built from the config and the clock `--now` fixed; every link works,
unsubscribes and hits from any of them are stored once, SIGTERM drains them all; and what
would stop a worker from starting is one line before anything listens."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from dripper.store.schema import customers, tracking_events
from tests.support.serve import ENV, PROGRAM, SECRET, ServeProcess, Shop, links
from tests.web.conftest import DAY20
from tests.web.test_links import BROWSER, rows, wait_for_hits


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_several_workers_answer_every_link_and_store_every_hit(shop: Shop) -> None:
    """Two worker processes: every open and click of every email answers, each is stored
    once with its class (judged by the fixed clock), a one-click unsubscribe is stored
    before its 200, and SIGTERM writes what every worker answered, then exits 0."""
    with ServeProcess(shop, now=DAY20, args=("--workers", "2")) as server:
        assert server.process is not None
        assert len(children(server.process.pid)) >= 2
        answered = 0
        with httpx.Client(headers={"user-agent": BROWSER}) as client:
            for message in shop.emails():
                for url in links(message, shop.base_url):
                    if "/o/" in url or "/c/" in url:
                        status = client.get(url).status_code
                        assert status == (200 if "/o/" in url else 302), url
                        answered += 1
        assert answered >= 10
        thanks = shop.email_to("grace@example.com", "Thank you")
        unsubscribe = next(u for u in links(thanks, shop.base_url) if "/u/" in u)
        posted = httpx.post(
            unsubscribe,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert posted.status_code == 200
        grace = rows(shop, customers, customers.c.email == "grace@example.com")[0]
        assert grace.status == "unsubscribed"  # stored before the 200, by whichever worker
        assert server.stop() == 0
    found = wait_for_hits(shop, answered)
    direct = [r for r in found if (r.data or {}).get("reason") != "implied by a click"]
    assert len(direct) == answered  # each answered hit stored once, none lost at SIGTERM
    assert all(r.at.isoformat().startswith("2027-01-24T18:00") for r in found)  # the fixed clock
    marked = rows(shop, tracking_events, tracking_events.c.kind == "unsubscribe")
    assert len(marked) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_worker_that_cannot_start_is_one_line_before_anything_listens(shop: Shop) -> None:
    """Without the secret, `serve --workers 2` says so in one line and exits 2 at once,
    instead of each worker dying with a traceback."""
    env = {k: v for k, v in {**os.environ, **ENV}.items() if k != "DRIPPER_SECRET"}
    assert SECRET not in env.values()
    command = [PROGRAM, "--config", str(shop.config), "serve", "--port", str(shop.port)]
    done = subprocess.run(
        [*command, "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "DRIPPER_SECRET is not set" in lines[0]
    assert "Traceback" not in done.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{shop.base_url}/healthz", timeout=1)

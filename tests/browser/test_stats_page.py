"""The `/stats` page of `dripper preview --serve` in a real browser (Debian's chromium,
headless, through Playwright): after real sends and real hits on `dripper serve`, the page
draws the funnels, the variants and the opens over time as SVG, runs no script, and does
not scroll sideways on a phone; a screenshot is taken of each width."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import chromium, free_port
from tests.support.serve import ENV, ServeProcess, Shop, links, make_shop

pytestmark = pytest.mark.browser
T0 = "2027-01-04T15:00:00Z"
DAY15 = "2027-01-19T18:00:00Z"
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """A shop that sent thank-yous and offers, some of them opened and clicked."""
    root = tmp_path_factory.mktemp("stats")
    shop = make_shop(root / "shop", f"sqlite:///{root / 'dripper.db'}")
    shop.ok("--now", T0, "customers", "import", str(shop.root / "customers.csv"))
    for address in ("ada@example.com", "grace@example.com", "linus@example.com"):
        shop.ok("--now", T0, "event", "purchase", address, "--data", '{"amount": 24.5}')
    shop.ok("--now", T0, "run", "--once")
    shop.ok("--now", DAY15, "run", "--once")
    with ServeProcess(shop, now="2027-01-20T12:00:00Z"):  # a day later: people
        for message in shop.emails():
            for url in links(message, shop.base_url):
                if "/o/" in url or ("/c/" in url and "ada" in str(message["To"])):
                    httpx.get(url, headers={"user-agent": PERSON})
                    time.sleep(0.01)
    return shop


@pytest.fixture(scope="module")
def site(shop: Shop) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [
            PROGRAM_ARGS[0],
            *PROGRAM_ARGS[1:],
            "--config",
            str(shop.config),
            "--now",
            DAY15,
            "preview",
            "--serve",
            "--port",
            str(port),
        ],
        env={**os.environ, **ENV},
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        err = server.stderr.read() if server.stderr else b""
        pytest.fail(f"preview server did not start: {err!r}")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


PROGRAM_ARGS = [sys.executable, "-m", "dripper"]


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[object]:
    """After the shop (its `run --once` needs this thread's event loop free)."""
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("width", [375, 1280])
def test_the_stats_page_draws_and_fits(
    site: str, browser: object, width: int, tmp_path: Path
) -> None:
    """SVG pictures of every step, no script, no horizontal scroll; the screenshot is a
    real picture (a PNG of the page's full height, not a blank)."""
    context = browser.new_context(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(f"{site}/stats")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("load")
    assert page.locator("script").count() == 0
    assert page.locator("h2", has_text=re.compile(r"^welcome$")).count() == 1
    assert page.locator("h3", has_text="second-sale").count() == 1
    svgs = page.locator("svg")
    # the timeline, a funnel for each step that sent something (newsletter, thank-you,
    # offer), the offer's variants; the steps that sent nothing say so in a line
    assert svgs.count() == 5
    assert page.locator("text=Nothing sent yet.").count() == 6  # win-back among them
    assert page.locator("svg[aria-label='variants side by side']").count() == 1
    assert page.locator("svg[aria-label='opens and clicks per day'] rect").count() >= 4
    for i in range(svgs.count()):
        box = svgs.nth(i).bounding_box()
        assert box is not None
        assert 0 < box["width"] <= width
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"/stats is {scroll}px wide at {width}px"
    shot = Path(os.environ.get("DRIPPER_SCREENSHOTS", tmp_path)) / f"stats-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 20_000
    assert errors == []
    context.close()


def test_one_campaign_and_a_bad_date(site: str) -> None:
    """`?campaign=` narrows the page; a bad `?since=` is a 400 that says why."""
    one = httpx.get(f"{site}/stats", params={"campaign": "welcome"})
    assert one.status_code == 200
    assert "<h2>welcome</h2>" in one.text
    assert "<h2>birthday</h2>" not in one.text
    bad = httpx.get(f"{site}/stats", params={"since": "soon"})
    assert bad.status_code == 400
    assert "since" in bad.text

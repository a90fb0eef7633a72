"""`dripper preview --serve` in a real browser: Debian's chromium, headless, driven by
Playwright (which never downloads a browser here). Every campaign and step loads with its
subject and text version; the mobile view has no horizontal scroll at 375 px; no script
from a template runs; the page reloads when a template changes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import cli
from tests.browser.conftest import chromium, free_port

pytestmark = pytest.mark.browser
STEPS = [
    ("welcome", "thank-you"),
    ("welcome", "second-sale"),
    ("value-newsletter", "edition"),
    ("referral-request", "ask"),
    ("birthday", "greeting"),
    ("feedback-follow-up", "make-it-right"),
    ("vip", "regulars"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A scaffolded project served by `dripper preview --serve` in its own process."""
    root = tmp_path_factory.mktemp("shop")
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    # A template that tries to run a script: it must never run.
    partial = root / "templates" / "partials" / "footer.mjml"
    partial.write_text(
        partial.read_text()
        + "\n<mj-raw><script>document.title = 'pwned'; console.log('pwned')</script></mj-raw>\n"
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dripper", "preview", "--serve", "--port", str(port)],
        cwd=root,
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        err = server.stderr.read().decode() if server.stderr else ""
        pytest.fail(f"preview server did not start: {err}")
    yield url, root
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def test_index_lists_every_campaign_and_step(site: tuple[str, Path], browser: object) -> None:
    url, _ = site
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(url + "/")
    for campaign, step in STEPS:
        assert page.locator(f"a[href='/c/{campaign}/{step}']").count() == 1


@pytest.mark.parametrize(("campaign", "step"), STEPS)
def test_each_step_page_shows_the_email_safely(
    site: tuple[str, Path], browser: object, campaign: str, step: str
) -> None:
    url, _ = site
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    logs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: logs.append(msg.text))
    page.goto(f"{url}/c/{campaign}/{step}")
    page.wait_for_load_state("load")
    assert page.locator("#subject").inner_text().strip()
    assert "1 Roastery Lane" in page.locator("#text").inner_text()
    frames = page.locator("iframe")
    assert frames.count() == 2
    for i in range(2):
        assert frames.nth(i).get_attribute("sandbox") == ""  # no allow-scripts
    body = page.frame_locator("iframe.mobile").locator("body")
    assert "Acme Coffee" in body.inner_text()
    assert errors == []
    assert "pwned" not in " ".join(logs)
    assert page.title() != "pwned"


@pytest.mark.parametrize(("campaign", "step"), STEPS)
def test_the_mobile_view_has_no_horizontal_scroll(
    site: tuple[str, Path], browser: object, campaign: str, step: str
) -> None:
    url, _ = site
    context = browser.new_context(viewport={"width": 375, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()
    logs: list[str] = []
    page.on("console", lambda msg: logs.append(msg.text))
    response = page.goto(f"{url}/raw/{campaign}/{step}")
    assert response is not None
    assert response.ok
    assert "sandbox" in (response.headers.get("content-security-policy") or "")
    page.wait_for_load_state("load")
    # The CSP sandbox blocks the template's script, so run the measurement from outside:
    # Playwright evaluates in an isolated world that the page's CSP does not govern.
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 375, f"{campaign}/{step} is {width}px wide at 375px"
    assert page.title() != "pwned"
    assert "pwned" not in " ".join(logs)
    context.close()


def test_the_page_reloads_when_a_template_changes(site: tuple[str, Path], browser: object) -> None:
    url, root = site
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{url}/c/welcome/thank-you")
    page.wait_for_timeout(1500)  # the page has seen the current version
    template = root / "templates" / "thank-you.mjml"
    template.write_text(
        template.read_text().replace("glad you are here", "Many thanks for being here")
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the page polls /_changes and reloads itself
        page.wait_for_timeout(250)
        text = page.locator("#text")
        if text.count() and "Many thanks" in text.inner_text():
            return
    pytest.fail("the page did not reload after the template changed")

"""The signup and confirm pages of a real `dripper serve` in Debian's chromium: without
JavaScript the plain form posts and the confirm button confirms; with `proof_of_work` on,
the page's own script solves the challenge before the form posts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.browser.conftest import chromium
from tests.support.serve import ENV, PROGRAM, ServeProcess, Shop, links
from tests.web.test_signup import NOW, rows, signup_shop

pytestmark = pytest.mark.browser


def daemon_pass(shop: Shop) -> None:
    """`dripper run --once` in a process of its own: Playwright's loop runs in this thread."""
    done = subprocess.run(
        [PROGRAM, "--config", str(shop.config), "--now", NOW, "run", "--once"],
        env={**os.environ, **ENV},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def test_sign_up_and_confirm_without_javascript(
    tmp_path: Path, db_url: str, browser: object
) -> None:
    """Type an address, tick a topic, press Subscribe: "check your inbox"; the link from
    the confirmation email shows one button; pressing it subscribes."""
    from dripper.store.schema import customers

    shop = signup_shop(tmp_path / "shop", db_url)
    with ServeProcess(shop, now=NOW):
        context = browser.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.goto(f"{shop.base_url}/subscribe")
            assert page.locator("script").count() == 0
            page.fill("input[name=email]", "browser.reader@example.com")
            page.fill("input[name=first_name]", "Bea")
            page.uncheck("input[value=offers]")
            page.click("button[type=submit]")
            assert "Check your inbox" in page.inner_text("h1")
            daemon_pass(shop)
            message = shop.email_to("browser.reader@example.com", "confirm")
            (link,) = [u for u in links(message, shop.base_url) if "/s/" in u]
            page.goto(link)
            assert rows(shop, customers, customers.c.email == "browser.reader@example.com") == []
            page.click("button")
            assert "You are subscribed" in page.inner_text("h1")
        finally:
            context.close()
    (row,) = rows(shop, customers, customers.c.email == "browser.reader@example.com")
    assert (row["status"], row["topics"], row["first_name"]) == ("subscribed", ["news"], "Bea")


def test_the_page_solves_the_proof_of_work(tmp_path: Path, db_url: str, browser: object) -> None:
    """`proof_of_work = true`: a post without a solution is refused (400, nothing stored);
    the page fetches a challenge, solves it in the browser and posts."""
    import httpx

    from dripper.store.schema import signups

    shop = signup_shop(tmp_path / "shop", db_url)
    shop.config.write_text(
        shop.config.read_text().replace("proof_of_work = false", "proof_of_work = true")
    )
    with ServeProcess(shop, now=NOW):
        refused = httpx.post(f"{shop.base_url}/subscribe", data={"email": "bot@example.com"})
        assert refused.status_code == 400
        context = browser.new_context()  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.goto(f"{shop.base_url}/subscribe")
            page.fill("input[name=email]", "solver@example.com")
            page.click("button[type=submit]")
            page.wait_for_selector("text=Check your inbox", timeout=60_000)
        finally:
            context.close()
    stored = [r["email"] for r in rows(shop, signups, sa.true())]
    assert stored == ["solver@example.com"]

"""The unsubscribe page of a real `dripper serve` in Debian's chromium (Playwright): with
the shipped `[topics]` it is the preference page (each topic a checkbox, "save" and "stop
all email"); GET changes nothing, "save" keeps the topics ticked, "stop all email"
unsubscribes, a reload shows the done state; no script runs, nothing scrolls sideways at
375 px."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dripper.store import open_store
from tests.browser.conftest import chromium
from tests.support.serve import ServeProcess, Shop, links
from tests.web.conftest import server, shop  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture  # after the shop: its `run --once` needs the thread's event loop free
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def status(where: Shop, email: str) -> str:
    store = open_store(where.db_url)
    try:
        customer = store.get_customer(email)
        assert customer is not None
        return customer.status.value
    finally:
        store.close()


def topics(where: Shop, email: str) -> tuple[str, ...] | None:
    store = open_store(where.db_url)
    try:
        customer = store.get_customer(email)
        assert customer is not None
        return customer.topics
    finally:
        store.close()


def test_the_unsubscribe_page_in_a_browser(
    shop: Shop,  # noqa: F811
    server: ServeProcess,  # noqa: F811
    browser: object,
) -> None:
    """With JavaScript switched off (so none is needed): the topics and two buttons, the
    shop's name, no script, no sideways scroll; GETs change nothing; unticking a topic and
    saving keeps the customer subscribed without it; "stop all email" unsubscribes;
    reloading, and coming back later, show the done state."""
    url = next(
        u for u in links(shop.email_to("ada@example.com", "Thank you"), shop.base_url) if "/u/" in u
    )
    context = browser.new_context(  # type: ignore[attr-defined]
        java_script_enabled=False, viewport={"width": 375, "height": 740}
    )
    try:
        page = context.new_page()
        page.goto(url)
        assert page.locator("button").count() == 2  # save my choice, stop all email
        assert page.locator("input[type=checkbox][name=topics]").count() == 1
        text = page.inner_text("main")
        assert "a***a@example.com" in text  # the address, partly masked
        assert "Acme Coffee" in text  # whose emails these are
        assert page.locator("script").count() == 0
        for element in page.locator("body *").all():  # nothing reaches past the screen
            box = element.bounding_box()
            if box is not None:
                assert box["x"] >= 0, box
                assert box["x"] + box["width"] <= 375, box
        page.reload()  # GETs change nothing, however many
        assert status(shop, "ada@example.com") == "subscribed"
        page.uncheck("input[name=topics]")
        page.click("button[value=save]")
        assert "Your choice is saved" in page.inner_text("h1")
        assert status(shop, "ada@example.com") == "subscribed"
        assert topics(shop, "ada@example.com") == ()
        page.goto(url)
        assert not page.is_checked("input[name=topics]")  # the choice, shown again
        page.click("button[value=stop]")
        page.wait_for_load_state("load")
        assert "You are unsubscribed" in page.inner_text("h1")
        assert status(shop, "ada@example.com") == "unsubscribed"
        page.reload()  # the form again (one-click unsubscribing is idempotent) or a GET
        assert "You are unsubscribed" in page.inner_text("h1")
        page.goto(url)  # coming back later: the done state, no button
        assert "You are unsubscribed" in page.inner_text("h1")
        assert page.locator("button").count() == 0
        assert page.locator("script").count() == 0
        assert context.cookies() == []
    finally:
        context.close()

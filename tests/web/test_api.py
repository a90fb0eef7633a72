"""The events API and the shop webhooks of a real `dripper serve`, on SQLite and
PostgreSQL: bearer auth, all or nothing per request, the limits, JSON errors; Shopify and
WooCommerce payloads shaped like the real ones, their signatures checked; a referred
purchase reaching the referral request's goal. One shop and one serve per database serve
the module (each test its own customers, counts relative); the test that changes the
config runs a project and a serve of its own on that shop's database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import customers, enrollments, events
from tests.support.serve import (
    API_TOKEN,
    SHOPIFY_SECRET,
    WOO_SECRET,
    ServeProcess,
    Shop,
    links,
    make_shop,
)

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def count(shop: Shop, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(*where)
            return int(conn.execute(query).scalar_one())
    finally:
        store.close()


def post(shop: Shop, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        shop.base_url + path,
        content=content,
        headers={"content-type": "application/json", **(headers or {})},
        timeout=30,
    )


def test_events_are_recorded_with_the_same_decisions_as_the_cli(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """One event or a list of them: 200 with the count; a first purchase enrolls the
    buyer in the welcome sequence as `dripper event` would (the signup alone does not)."""
    welcomed = count(module_shop, enrollments, enrollments.c.campaign == "welcome")
    one = post(
        module_shop,
        "/api/events",
        {"type": "purchase", "email": "New.Buyer@Example.com", "data": {"amount": "12.50"}},
        AUTH,
    )
    assert (one.status_code, one.json()) == (200, {"recorded": 1, "duplicates": 0})
    many = post(
        module_shop,
        "/api/events",
        {
            "events": [
                {"type": "signup", "email": "a1@example.com", "at": "2027-01-20T10:00:00Z"},
                {"type": "signup", "email": "a2@example.com"},
                {"type": "purchase", "email": "a1@example.com", "data": {"amount": 5}},
            ]
        },
        AUTH,
    )
    assert (many.status_code, many.json()) == (200, {"recorded": 3, "duplicates": 0})
    assert count(module_shop, customers, customers.c.email == "new.buyer@example.com") == 1
    # The module's other tests enroll buyers of their own: count what these two added.
    assert count(module_shop, enrollments, enrollments.c.campaign == "welcome") == welcomed + 2


X = {"type": "purchase", "email": "x@example.com"}
WRONG = {"authorization": "Bearer nope"}
MANY = {"events": [{"type": "signup", "email": f"u{i}@example.com"} for i in range(1001)]}
HUGE = b'{"type": "signup", "email": "x@example.com", "data": {"pad": "' + b"x" * (1 << 20)


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (X, {}, 401, "bearer"),
        (X, WRONG, 401, "bearer"),
        (b"{not json", AUTH, 400, "not JSON"),
        ([1, 2], AUTH, 422, "expected an event"),
        ({**X, "type": "Purchase!"}, AUTH, 422, "events[0].type"),
        ({**X, "email": "not an address"}, AUTH, 422, "events[0].email"),
        ({**X, "at": "soon"}, AUTH, 422, "events[0].at"),
        ({**X, "data": {"n": "a\u0000"}}, AUTH, 422, "NUL"),
        ({**X, "data": {"amount": 1e308}}, AUTH, 422, "too large"),
        ({**X, "extra": 1}, AUTH, 422, "unknown key"),
        (MANY, AUTH, 413, "at most 1,000"),
        (HUGE + b'"}}', AUTH, 413, "larger than"),
    ],
)
def test_bad_requests_get_a_json_error_and_record_nothing(
    module_shop: Shop,
    module_server: ServeProcess,
    body: Any,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    """Each refusal has its status and a JSON `error`; no event of the request is kept."""
    before = count(module_shop, events)
    answer = post(module_shop, "/api/events", body, headers)
    assert answer.status_code == status, answer.text
    assert error in answer.json()["error"]
    assert count(module_shop, events) == before


def test_a_request_is_all_or_nothing(module_shop: Shop, module_server: ServeProcess) -> None:
    """Two good events and a third the planner refuses (a negative amount): 422 naming
    it by its index, and neither of the good two was recorded."""
    before = count(module_shop, events)
    answer = post(
        module_shop,
        "/api/events",
        {
            "events": [
                {"type": "signup", "email": "b1@example.com"},
                {"type": "signup", "email": "b2@example.com"},
                {"type": "purchase", "email": "b3@example.com", "data": {"amount": "-3"}},
            ]
        },
        AUTH,
    )
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("events[2]")
    assert count(module_shop, events) == before
    refused = customers.c.email.in_(["b1@example.com", "b2@example.com"])
    assert count(module_shop, customers, refused) == 0


def shopify_order(email: str, *, ref: str | None = None) -> dict[str, Any]:
    """An orders/create payload trimmed from Shopify's documented example."""
    landing = "/products/ethiopia?utm_source=newsletter" + (f"&ref={ref}" if ref else "")
    return {
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "email": email,
        "contact_email": email,
        "created_at": "2027-01-21T10:15:00-05:00",
        "currency": "USD",
        "current_total_price": "31.00",
        "total_price": "31.00",
        "subtotal_price": "26.00",
        "total_tax": "0.00",
        "financial_status": "paid",
        "name": "#9999",
        "order_number": 1234,
        "landing_site": landing,
        "referring_site": "https://mail.example.com/",
        "discount_codes": [],
        "customer": {
            "id": 115310627314723954,
            "email": email,
            "first_name": "Jane",
            "last_name": "Doe",
        },
        "line_items": [{"id": 866550311766439020, "title": "Ethiopia", "quantity": 1}],
    }


def signed(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256)).decode()


def test_shopify_orders_become_purchases_and_referrals_reach_the_goal(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """Ada's referral link carries her code to the shop; the friend's Shopify order with
    that `ref` is a purchase for the friend and a `referral` for Ada, which converts her
    referral request. A wrong signature is refused; another topic is ignored."""
    ask = module_shop.email_to("ada@example.com", "A bag for a friend")
    referral = next(u for u in links(ask, module_shop.base_url) if "/r/" in u)
    landing = httpx.get(referral)
    assert landing.status_code == 302
    code = parse_qs(urlsplit(landing.headers["location"]).query)["ref"][0]
    body = json.dumps(shopify_order("friend@example.com", ref=code)).encode()
    headers = {
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": signed(body, SHOPIFY_SECRET),
        "x-shopify-shop-domain": "acme-coffee.myshopify.com",
    }
    referrals = count(module_shop, events, events.c.type == "referral")  # none but this one's
    forged = post(module_shop, "/api/shopify", body, {**headers, "x-shopify-hmac-sha256": "AAAA"})
    assert forged.status_code == 401
    other = post(module_shop, "/api/shopify", body, {**headers, "x-shopify-topic": "orders/paid"})
    assert other.json() == {"recorded": 0, "duplicates": 0, "ignored": "orders/paid"}
    assert count(module_shop, customers, customers.c.email == "friend@example.com") == 0
    answer = post(module_shop, "/api/shopify", body, headers)
    assert (answer.status_code, answer.json()) == (200, {"recorded": 1, "duplicates": 0})
    assert count(module_shop, events, events.c.type == "referral") == referrals + 1
    shown = module_shop.ok("customers", "show", "ada@example.com").output
    assert "referral-request" in shown
    assert "converted" in shown, shown
    # The same order again (Shopify retries): the friend was referred once, no second referral.
    again = post(module_shop, "/api/shopify", body, headers)
    assert (again.status_code, again.json()) == (200, {"recorded": 0, "duplicates": 1})
    assert count(module_shop, events, events.c.type == "referral") == referrals + 1


def test_nobody_refers_themselves(module_shop: Shop, module_server: ServeProcess) -> None:
    """Ada buying with her own code records her purchase and no referral."""
    ask = module_shop.email_to("ada@example.com", "A bag for a friend")
    referral = next(u for u in links(ask, module_shop.base_url) if "/r/" in u)
    code = parse_qs(urlsplit(httpx.get(referral).headers["location"]).query)["ref"][0]
    referrals = count(module_shop, events, events.c.type == "referral")
    answer = post(
        module_shop,
        "/api/events",
        {"type": "purchase", "email": "ada@example.com", "data": {"amount": 9, "ref": code}},
        AUTH,
    )
    assert answer.status_code == 200
    assert count(module_shop, events, events.c.type == "referral") == referrals


def woo_order(email: str) -> dict[str, Any]:
    """An order.created payload shaped like WooCommerce's REST v3 order."""
    return {
        "id": 727,
        "number": "727",
        "status": "processing",
        "currency": "EUR",
        "date_created": "2027-01-21T16:15:00",
        "date_created_gmt": "2027-01-21T15:15:00",
        "total": "18.00",
        "customer_id": 0,
        "billing": {"first_name": "Ana", "last_name": "Silva", "email": email},
        "meta_data": [{"id": 13106, "key": "_wc_order_attribution_source_type", "value": "utm"}],
        "line_items": [{"id": 315, "name": "Kenya AA", "quantity": 1, "total": "18.00"}],
        "coupon_lines": [],
    }


def test_woocommerce_orders_become_purchases(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """The hook's ping is answered; a signed order.created is a purchase at its GMT time;
    a bad signature is refused."""
    ping = httpx.post(
        module_shop.base_url + "/api/woocommerce",
        content=b"webhook_id=42",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200
    body = json.dumps(woo_order("ana@example.com")).encode()
    headers = {"x-wc-webhook-topic": "order.created", "x-wc-webhook-source": "https://acme.test/"}
    unsigned = {**headers, "x-wc-webhook-signature": "nope"}
    bad = post(module_shop, "/api/woocommerce", body, unsigned)
    assert bad.status_code == 401
    good = post(
        module_shop,
        "/api/woocommerce",
        body,
        {**headers, "x-wc-webhook-signature": signed(body, WOO_SECRET)},
    )
    assert (good.status_code, good.json()) == (200, {"recorded": 1, "duplicates": 0})
    store = open_store(module_shop.db_url)
    try:
        with store.reading() as conn:
            row = conn.execute(
                sa.select(events).where(events.c.type == "purchase").order_by(events.c.id.desc())
            ).first()
    finally:
        store.close()
    assert row is not None
    assert row.data == {
        "amount": "18.00",
        "currency": "EUR",
        "order": "727",
        "items": [{"name": "Kenya AA", "quantity": 1}],  # the line gave no price
        "product": "Kenya AA",
    }
    assert row.at.isoformat().startswith("2027-01-21T15:15:00")


def test_a_shop_that_is_not_connected_is_a_404(module_shop: Shop, tmp_path: Path) -> None:
    """Without [api] shopify_secret_env the route does not exist."""
    # A project of its own (its config changes, its serve has a port of its own), on the
    # database the module's shop filled.
    shop = make_shop(tmp_path / "shop", module_shop.db_url)
    config = shop.config
    config.write_text(
        config.read_text().replace(
            'shopify_secret_env = "DRIPPER_SHOPIFY_SECRET"', 'shopify_secret_env = ""'
        )
    )
    with ServeProcess(shop):
        answer = post(shop, "/api/shopify", b"{}", {"x-shopify-hmac-sha256": "x"})
        assert answer.status_code == 404

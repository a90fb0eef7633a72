"""What comes in, exactly once and complete (DESIGN 12), against a real `dripper serve` on
SQLite and PostgreSQL: event ids make repeats (one after another, within one request, or
raced by many clients against two worker processes) record nothing; the `customer` object
reaches the first thank-you; bad ids, currencies, customer fields and refunds are refused
whole; refunds lower the spend; and the Shopify and WooCommerce webhooks, from the shops'
own payloads, are recorded once however often they are delivered.

Tests that only post about customers of their own (or Linus, whom no other touches) share
one shop per database (and its serve, or one of their own with two workers) and count
relative to what was there; those that run the daemon or change Grace and Linus have a
shop of their own."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import customers, enrollments, events, outbox
from tests.support.serve import (
    SHOPIFY_SECRET,
    WOO_SECRET,
    ServeProcess,
    Shop,
    free_port,
    last_id,
)
from tests.web.conftest import DAY20
from tests.web.test_api import AUTH, count, post, signed

SHOPS = Path(__file__).parents[1] / "data" / "shops"
SOON = "2027-01-24T18:05:00Z"  # just after the server's clock (DAY20): what is due is sent
LATER = "2027-02-10T12:00:00Z"  # after the second-sale step of an enrollment made at DAY20


def payload(name: str) -> dict[str, Any]:
    document = json.loads((SHOPS / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def rows(shop: Shop, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[sa.Row[Any]]:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            return list(conn.execute(sa.select(table).where(*where)))
    finally:
        store.close()


def customer(shop: Shop, address: str) -> sa.Row[Any]:
    found = rows(shop, customers, customers.c.email == address)
    assert len(found) == 1, address
    return found[0]


def totals(shop: Shop) -> dict[str, int]:
    """Rows of everything an event can add to: a repeat must leave all of them alone."""
    return {t.name: count(shop, t) for t in (events, customers, enrollments, outbox)}


def money(shop: Shop, address: str) -> tuple[int, int]:
    """A customer's purchases and total_spent (in cents)."""
    row = customer(shop, address)
    return row.purchases, row.total_spent_cents


def shopify(shop: Shop, topic: str, body: Any, webhook_id: str) -> httpx.Response:
    """A Shopify delivery as Shopify signs it: HMAC-SHA256 of the raw body, base64."""
    raw = json.dumps(body).encode()
    headers = {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": signed(raw, SHOPIFY_SECRET),
        "x-shopify-shop-domain": "acme-coffee.myshopify.com",
        "x-shopify-webhook-id": webhook_id,
    }
    return post(shop, "/api/shopify", raw, headers)


def woocommerce(shop: Shop, topic: str, body: Any, *, secret: str = WOO_SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-source": "https://acme.test/",
        "x-wc-webhook-signature": signed(raw, secret),
    }
    return post(shop, "/api/woocommerce", raw, headers)


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


FIRST = {"recorded": 1, "duplicates": 0}
AGAIN = {"recorded": 0, "duplicates": 1}


# --- the events API ---------------------------------------------------------------------


def test_an_event_id_is_recorded_once_and_a_repeat_changes_nothing(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """The same purchase posted twice is recorded, then counted a duplicate; a repeat with
    other data and other customer fields changes nothing either (no event, spend, name,
    enrollment or email); the same id of another type is another event; one id twice in
    one request is recorded once; and a numeric id is the same id as its text."""
    order = {
        "type": "purchase",
        "email": "noor@example.com",
        "id": "shop:order:1001",
        "data": {"amount": "40.00"},
        "customer": {"first_name": "Noor"},
    }
    welcomed = count(module_shop, enrollments, enrollments.c.campaign == "welcome")
    assert answer(post(module_shop, "/api/events", order, AUTH)) == (200, FIRST)
    after_first = totals(module_shop)
    assert money(module_shop, "noor@example.com") == (1, 4000)
    welcome = enrollments.c.campaign == "welcome"
    assert count(module_shop, enrollments, welcome) == welcomed + 1  # Noor

    assert answer(post(module_shop, "/api/events", order, AUTH)) == (200, AGAIN)
    changed = {**order, "data": {"amount": "99.00"}, "customer": {"first_name": "Nora"}}
    assert answer(post(module_shop, "/api/events", {"events": [changed]}, AUTH)) == (200, AGAIN)
    assert totals(module_shop) == after_first
    assert money(module_shop, "noor@example.com") == (1, 4000)
    assert customer(module_shop, "noor@example.com").first_name == "Noor"
    stored = rows(module_shop, events, events.c.ext_id == "shop:order:1001")
    assert [(e.type, e.data) for e in stored] == [("purchase", {"amount": "40.00"})]

    # (type, id) is the key: the shop may number its signups and orders alike.
    signup = {"type": "signup", "email": "noor@example.com", "id": "shop:order:1001"}
    assert answer(post(module_shop, "/api/events", signup, AUTH)) == (200, FIRST)

    twice = {"type": "purchase", "email": "omar@example.com", "id": "shop:order:1002"}
    both = post(
        module_shop, "/api/events", {"events": [twice, {**twice, "data": {"amount": 5}}]}, AUTH
    )
    assert answer(both) == (200, {"recorded": 1, "duplicates": 1})
    assert money(module_shop, "omar@example.com") == (1, 0)  # the first of the two, worth nothing
    assert count(module_shop, events, events.c.ext_id == "shop:order:1002") == 1

    # A shop's numeric order id is the same id as its text.
    numbered = {"type": "purchase", "email": "omar@example.com", "id": 3003}
    assert answer(post(module_shop, "/api/events", numbered, AUTH)) == (200, FIRST)
    again = post(module_shop, "/api/events", {**numbered, "id": "3003"}, AUTH)
    assert answer(again) == (200, AGAIN)


def test_many_clients_racing_two_workers_with_the_same_ids_record_each_once(
    module_shop: Shop,
) -> None:
    """`serve --workers 2` and 8 clients posting the same 20 purchases (5 new buyers) at
    the same moment: every answer is 200, the answers' `recorded` add up to 20 and their
    `duplicates` to the rest, each id is stored once, and spend and welcome enrollments
    are those of one set."""
    # The module's shop, with a serve of its own on another port (the module's may be
    # running): the racers and their ids are this test's alone.
    shop = dataclasses.replace(module_shop, port=free_port())
    batch = {
        "events": [
            {
                "type": "purchase",
                "email": f"racer{i % 5}@example.com",
                "id": f"race:order:{i}",
                "data": {"amount": "2.50"},
            }
            for i in range(20)
        ]
    }
    clients = 8
    start = threading.Barrier(clients)
    answers: list[httpx.Response | BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        start.wait()
        try:
            got: httpx.Response | BaseException = post(shop, "/api/events", batch, AUTH)
        except BaseException as exc:  # kept: an exception in a thread would go unseen
            got = exc
        with lock:
            answers.append(got)

    welcomed = count(shop, enrollments, enrollments.c.campaign == "welcome")
    with ServeProcess(shop, now=DAY20, args=("--workers", "2")):
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert len(answers) == clients
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert responses == answers, answers
    assert [r.status_code for r in responses] == [200] * clients, [r.text for r in responses]
    assert sum(r.json()["recorded"] for r in responses) == 20
    assert sum(r.json()["duplicates"] for r in responses) == 20 * (clients - 1)
    stored = rows(shop, events, events.c.ext_id.like("race:order:%"))
    assert sorted(e.ext_id for e in stored) == sorted(f"race:order:{i}" for i in range(20))
    for n in range(5):
        assert money(shop, f"racer{n}@example.com") == (4, 1000)
    assert count(shop, enrollments, enrollments.c.campaign == "welcome") == welcomed + 5


def test_the_customer_object_is_applied_before_the_thank_you_is_planned(
    shop: Shop, server: ServeProcess
) -> None:
    """A new buyer's first purchase brings her names, locale, time zone, tags, attributes
    and consent: the thank-you greets her by the first name the event brought. Consent
    brought with a second purchase decides its marketing enrollment. For a known customer,
    tags are added (never replaced) and an empty value overwrites nothing."""
    first = {
        "type": "purchase",
        "email": "noor@example.com",
        "id": "shop:order:2001",
        "data": {"amount": "18.00", "product": "Kenya AA (250 g)"},
        "customer": {
            "first_name": "Noor",
            "last_name": "Haddad",
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
            "tags": ["wholesale", "espresso"],
            "attributes": {"company": "Café Noor", "seats": 12},
            "marketing": "subscribed",
        },
    }
    assert answer(post(shop, "/api/events", first, AUTH)) == (200, FIRST)
    noor = customer(shop, "noor@example.com")
    assert (noor.first_name, noor.last_name, noor.locale, noor.timezone, noor.status) == (
        "Noor",
        "Haddad",
        "fr-FR",
        "Europe/Paris",
        "subscribed",
    )
    assert noor.tags == ["wholesale", "espresso"]
    assert noor.attributes == {"company": "Café Noor", "seats": "12"}
    shop.ok("--now", SOON, "run", "--once")
    thanks = shop.email_to("noor@example.com", "Thank you for your order")
    assert str(thanks["Subject"]) == "Thank you for your order, Noor!"
    html = thanks.get_body(("html",))
    assert html is not None
    assert "Thank you, Noor!" in " ".join(html.get_content().split())

    # Grace and Linus bought once: a second purchase asks for a referral (marketing), unless
    # the consent that comes with it, applied first, says she did not opt in.
    for address, given in (("grace@example.com", "not_subscribed"), ("linus@example.com", None)):
        again = {"type": "purchase", "email": address, "customer": {"marketing": given}}
        assert answer(post(shop, "/api/events", again, AUTH)) == (200, FIRST)
    asked = rows(shop, enrollments, enrollments.c.campaign == "referral-request")
    ids = {customer(shop, a).id: a for a in ("grace@example.com", "linus@example.com")}
    assert sorted(ids[e.customer_id] for e in asked if e.customer_id in ids) == [
        "linus@example.com"
    ]
    assert customer(shop, "grace@example.com").status == "not_subscribed"

    # Zoë (imported: tags espresso;newsletter, city Copenhagen, locale da) says little.
    known = {
        "type": "visit",
        "email": "zoe@example.com",
        "customer": {
            "first_name": "",
            "last_name": None,
            "locale": "",
            "tags": ["wholesale", "espresso", ""],
            "attributes": {"city": "", "tier": "gold"},
        },
    }
    assert answer(post(shop, "/api/events", known, AUTH)) == (200, FIRST)
    zoe = customer(shop, "zoe@example.com")
    assert (zoe.first_name, zoe.last_name, zoe.locale) == ("Zoë", "Ørsted", "da")
    assert zoe.tags == ["espresso", "newsletter", "wholesale"]
    assert zoe.attributes["city"] == "Copenhagen"
    assert zoe.attributes["tier"] == "gold"


def test_a_bad_event_is_a_422_naming_its_field_and_nothing_of_the_request_is_stored(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """An id too long or with a line break, an unknown currency, an unknown customer key,
    a first name with a line break, a refund of nothing: each a 422 whose JSON `error`
    names the field, and no event or customer of the request stored; a good first event
    before a bad second one is not stored either."""
    good = {"type": "purchase", "email": "first@example.com", "id": "ok:1", "data": {"amount": 5}}
    bad = {"type": "purchase", "email": "bad@example.com"}
    name = "Bo\nBcc: x@example.com"  # a header injection, were it let through
    cases: list[tuple[dict[str, Any], str, str]] = [  # body, the field, a word of the error
        ({**bad, "id": "x" * 201}, "events[0].id", "201 characters"),
        ({**bad, "id": "order\n1"}, "events[0].id", "line break"),
        ({**bad, "data": {"amount": "5", "currency": "XYZ"}}, "events[0].data.currency", "XYZ"),
        ({**bad, "customer": {"nickname": "Bo"}}, "events[0].customer", "'nickname'"),
        ({**bad, "customer": {"first_name": name}}, "events[0].customer.first_name", "line"),
        ({**bad, "type": "refund", "data": {"amount": "0"}}, "events[0].data.amount", "than 0"),
        ({"events": [good, {**bad, "id": "order\r\n2"}]}, "events[1].id", "line break"),
    ]
    before = totals(module_shop)
    for body, field, word in cases:
        got = post(module_shop, "/api/events", body, AUTH)
        assert got.status_code == 422, (body, got.text)
        error = got.json()["error"]
        assert error.startswith(field), (field, error)
        assert word in error, (word, error)
        assert totals(module_shop) == before, field
    assert count(module_shop, customers, customers.c.email.in_([bad["email"], good["email"]])) == 0


def test_a_refund_larger_than_the_spend_is_recorded_at_zero_with_a_warning(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """Linus spent 24.50; a refund of 100 is recorded (200), his total_spent stops at 0
    (not below), his purchases stay counted, and the answer's warnings say why."""
    assert money(module_shop, "linus@example.com") == (1, 2450)
    refunds = count(module_shop, events, events.c.type == "refund")
    refund = {"type": "refund", "email": "linus@example.com", "data": {"amount": "100.00"}}
    got = post(module_shop, "/api/events", refund, AUTH)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["recorded"], body["duplicates"]) == (1, 0)
    assert len(body["warnings"]) == 1
    assert body["warnings"][0].startswith("events[0]: ")
    assert "more than" in body["warnings"][0]
    assert "total_spent is 0" in body["warnings"][0]
    assert money(module_shop, "linus@example.com") == (1, 0)
    assert count(module_shop, events, events.c.type == "refund") == refunds + 1


# --- Shopify ----------------------------------------------------------------------------


def test_shopify_orders_and_refunds_are_recorded_once_for_the_orders_buyer(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """Shopify's orders/create delivered three times (a retry with the same webhook id, one
    with a new one) is one purchase `shopify:order:<id>` whose buyer gets the order's
    names, locale and consent; its refunds/create (no address in it) lowers that buyer's
    spend, once; a refund of an order never recorded, a bad signature and another topic
    store nothing."""
    refund = payload("shopify-refunds-create.json")  # Shopify's example: 89.99 of an order
    order = payload("shopify-orders-create.json")
    # That order is the refunded one, in the company's currency (CAD would be kept apart).
    order.update(id=refund["order_id"], currency="USD", total_price="120.00")
    purchase_id = f"shopify:order:{refund['order_id']}"
    # Jane was known without consent; the order's consent record says she gave it now.
    known = {
        "type": "visit",
        "email": "jane.doe@example.com",
        "customer": {"marketing": "not_subscribed"},
    }
    assert answer(post(module_shop, "/api/events", known, AUTH)) == (200, FIRST)
    since = last_id(module_shop, events)

    assert answer(shopify(module_shop, "orders/create", order, "wh-1")) == (200, FIRST)
    assert answer(shopify(module_shop, "orders/create", order, "wh-1")) == (200, AGAIN)
    assert answer(shopify(module_shop, "orders/create", order, "wh-2")) == (200, AGAIN)
    [stored] = rows(
        module_shop, events, events.c.type == "purchase", events.c.ext_id == purchase_id
    )
    jane = customer(module_shop, "jane.doe@example.com")
    assert stored.customer_id == jane.id
    assert stored.data["amount"] == "120.00"
    assert stored.data["product"] == "Ethiopia Guji (250 g) and 2 more"
    assert (jane.first_name, jane.last_name, jane.locale, jane.status) == (
        "Jane",
        "Doe",
        "en-CA",
        "subscribed",
    )
    assert (jane.purchases, jane.total_spent_cents) == (1, 12000)
    assert count(module_shop, enrollments, enrollments.c.customer_id == jane.id) == 1

    assert answer(shopify(module_shop, "refunds/create", refund, "wh-3")) == (200, FIRST)
    assert answer(shopify(module_shop, "refunds/create", refund, "wh-4")) == (200, AGAIN)
    [returned] = rows(module_shop, events, events.c.type == "refund", events.c.id > since)
    assert returned.ext_id == f"shopify:refund:{refund['id']}"
    assert returned.customer_id == jane.id  # found by the order, not by an address
    assert returned.data == {"order": purchase_id, "amount": "89.99", "currency": "USD"}
    assert money(module_shop, "jane.doe@example.com") == (1, 12000 - 8999)

    before = totals(module_shop)
    unknown = {**refund, "id": 1, "order_id": 2}
    got = shopify(module_shop, "refunds/create", unknown, "wh-5")
    assert got.status_code == 200
    body = got.json()
    assert (body["recorded"], body["duplicates"]) == (0, 0)
    assert len(body["warnings"]) == 1
    assert "'shopify:order:2'" in body["warnings"][0]
    assert "no such purchase" in body["warnings"][0]

    other = {**order, "id": 5, "email": "forged@example.com", "contact_email": None}
    raw = json.dumps(other).encode()
    forged = {
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": signed(raw, "not-the-shops-secret"),
    }
    got = post(module_shop, "/api/shopify", raw, forged)
    assert got.status_code == 401
    assert "X-Shopify-Hmac-Sha256" in got.json()["error"]
    assert answer(shopify(module_shop, "orders/updated", other, "wh-6")) == (
        200,
        {"recorded": 0, "duplicates": 0, "ignored": "orders/updated"},
    )
    assert totals(module_shop) == before
    assert count(module_shop, customers, customers.c.email == "forged@example.com") == 0


def test_a_shopify_buyer_who_declined_marketing_gets_only_the_transactional_thank_you(
    shop: Shop, server: ServeProcess
) -> None:
    """The order whose consent record says not_subscribed (though the checkout box is
    ticked) makes Lena `not_subscribed`, named from the billing address, locale de; she is
    enrolled in the welcome sequence and thanked (a transactional step), but its
    second-sale offer, marketing, is skipped for her."""
    order = payload("shopify-orders-create-not-subscribed.json")
    order["created_at"] = "2027-01-24T17:59:00+00:00"  # a minute before the server's clock
    assert answer(shopify(shop, "orders/create", order, "wh-lena")) == (200, FIRST)
    lena = customer(shop, "lena.schmidt@example.de")
    assert (lena.first_name, lena.last_name, lena.locale, lena.status) == (
        "Lena",
        "Schmidt",
        "de",
        "not_subscribed",
    )
    [welcome] = rows(shop, enrollments, enrollments.c.customer_id == lena.id)
    assert (welcome.campaign, welcome.status) == ("welcome", "active")

    shop.ok("--now", SOON, "run", "--once")
    thanks = shop.email_to("lena.schmidt@example.de", "Thank you for your order")
    assert str(thanks["Subject"]) == "Thank you for your order, Lena!"
    shop.ok("--now", LATER, "run", "--once")
    sends = {r.step: r for r in rows(shop, outbox, outbox.c.customer_id == lena.id)}
    assert sends["thank-you"].status == "sent"
    assert sends["second-sale"].status == "skipped"
    assert sends["second-sale"].reason == "not subscribed to marketing"
    assert [str(m["Subject"]) for m in shop.emails() if "lena" in str(m["To"])] == [
        "Thank you for your order, Lena!"
    ]


# --- WooCommerce ------------------------------------------------------------------------


def test_woocommerce_orders_and_refunds_are_recorded_once(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """WooCommerce's order 727 created, then updated to refunded, each delivered twice:
    one purchase `woocommerce:order:727` and one refund `woocommerce:refund:730` of its
    29.35, John's spend back to 0; an update that is no refund records nothing; a bad
    signature is a 401 and stores nothing."""
    created = payload("woocommerce-order-created.json")
    refunded = payload("woocommerce-order-refunded.json")
    assert answer(woocommerce(module_shop, "order.created", created)) == (200, FIRST)
    assert answer(woocommerce(module_shop, "order.created", created)) == (200, AGAIN)
    john = customer(module_shop, "john.doe@example.com")
    assert (john.first_name, john.last_name, john.purchases, john.total_spent_cents) == (
        "John",
        "Doe",
        1,
        2935,
    )
    assert answer(woocommerce(module_shop, "order.updated", refunded)) == (200, FIRST)
    assert answer(woocommerce(module_shop, "order.updated", refunded)) == (200, AGAIN)
    stored = rows(module_shop, events, events.c.customer_id == john.id)
    assert sorted((e.type, e.ext_id) for e in stored) == [
        ("purchase", "woocommerce:order:727"),
        ("refund", "woocommerce:refund:730"),
    ]
    assert money(module_shop, "john.doe@example.com") == (1, 0)

    before = totals(module_shop)
    completed = payload("woocommerce-order-updated.json")
    assert answer(woocommerce(module_shop, "order.updated", completed)) == (
        200,
        {"recorded": 0, "duplicates": 0},
    )
    other = {**created, "id": 728, "billing": {**created["billing"], "email": "eve@example.com"}}
    forged = woocommerce(module_shop, "order.created", other, secret="not-the-shops-secret")
    assert forged.status_code == 401
    assert "X-WC-Webhook-Signature" in forged.json()["error"]
    assert totals(module_shop) == before
    assert count(module_shop, customers, customers.c.email == "eve@example.com") == 0

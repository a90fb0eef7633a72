"""Shop webhooks read as events (dripper/web/shops/), against payloads in the shapes
Shopify and WooCommerce send (tests/data/shops/, sources in its README): ids, amounts,
currencies, names, locale, consent, what was ordered, refunds, and what is ignored."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.customers.addresses import is_valid_timezone, normalize_email
from dripper.eventdata import check_event_data, check_event_id, check_header_fields, is_one_line
from dripper.money import amount_cents, event_money
from dripper.timeparse import parse_instant
from dripper.web import shops

SHOPS = Path(__file__).parents[1] / "data" / "shops"
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")  # what a customers CSV takes


def payload(name: str) -> dict[str, Any]:
    document = json.loads((SHOPS / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def one(events: list[dict[str, Any]] | None) -> dict[str, Any]:
    assert events is not None
    assert len(events) == 1, events
    return events[0]


def shopify_order(name: str = "shopify-orders-create.json", **changes: Any) -> dict[str, Any]:
    order = payload(name)
    order.update(changes)
    return order


def purchase(order: dict[str, Any]) -> dict[str, Any]:
    return one(shops.shopify_events("orders/create", order))


# --- Shopify orders/create --------------------------------------------------------------


def test_a_shopify_order_is_one_purchase_with_every_field() -> None:
    """The coffee order is this purchase: id, address, time, money, lines, names, consent."""
    assert shops.shopify_events("orders/create", payload("shopify-orders-create.json")) == [
        {
            "type": "purchase",
            "id": "shopify:order:5940139491234",
            "email": "jane.doe@example.com",
            "at": "2027-01-21T10:15:00-05:00",
            "data": {
                "amount": "69.50",
                "currency": "CAD",
                "order": "#1001",
                "ref": "k3v9x2m8q4w7",
                "items": [
                    {"name": "Ethiopia Guji (250 g)", "quantity": 2, "price": "18.50"},
                    {"name": "Kenya Nyeri AA (250 g)", "quantity": 1, "price": "21.00"},
                    {"name": "Paper filters", "quantity": 1, "price": "6.50"},
                ],
                "product": "Ethiopia Guji (250 g) and 2 more",
            },
            "customer": {
                "first_name": "Jane",
                "last_name": "Doe",
                "locale": "en-CA",
                "marketing": "subscribed",
            },
        }
    ]


def test_shopifys_documented_example_reads_the_checkout_box_and_the_customers_names() -> None:
    """Shopify's example: no consent record, so its ticked box says subscribed; customer's names."""
    event = purchase(payload("shopify-orders-create-buyer-accepts-only.json"))
    assert event["id"] == "shopify:order:820982911946154508"
    assert event["email"] == "jon@example.com"
    assert event["customer"] == {
        "first_name": "John",
        "last_name": "Smith",
        "locale": "en",
        "marketing": "subscribed",
    }
    assert event["data"]["amount"] == "359.97"
    assert event["data"]["order"] == "#9999"
    assert event["data"]["product"] == "Aviator sunglasses and 2 more"
    assert "ref" not in event["data"]


def test_the_consent_record_beats_the_checkout_box_and_billing_names_fill_in() -> None:
    """A not_subscribed consent beats a ticked box; a nameless customer takes the billing
    names; a billing country with one time zone (Germany) gives it as a hint."""
    event = purchase(payload("shopify-orders-create-not-subscribed.json"))
    assert event["customer"] == {
        "first_name": "Lena",
        "last_name": "Schmidt",
        "locale": "de",
        "marketing": "not_subscribed",
        "timezone_hint": "Europe/Berlin",
    }
    assert event["data"]["currency"] == "EUR"


@pytest.mark.parametrize(
    ("state", "accepts", "expected"),
    [
        ("subscribed", False, "subscribed"),
        ("not_subscribed", True, "not_subscribed"),
        ("pending", True, "not_subscribed"),
        ("unsubscribed", True, "unsubscribed"),
        ("SUBSCRIBED", False, "subscribed"),
        ("redacted", True, "subscribed"),
        ("redacted", False, "not_subscribed"),
        ("invalid", True, "subscribed"),
        (None, False, "not_subscribed"),
        ("something-new", True, "subscribed"),
        ("redacted", None, None),
        (None, None, None),
        (None, "true", None),
    ],
)
def test_marketing_consent_maps_to_dripper_states(
    state: str | None, accepts: Any, expected: str | None
) -> None:
    """Consent states map to ours (pending: no yes); others fall back to the box; none: no key."""
    order = shopify_order()
    if state is None:
        del order["customer"]["email_marketing_consent"]
    else:
        order["customer"]["email_marketing_consent"]["state"] = state
    if accepts is None:
        del order["buyer_accepts_marketing"]
    else:
        order["buyer_accepts_marketing"] = accepts
    assert purchase(order)["customer"].get("marketing") == expected


def test_a_customer_object_that_is_null_leaves_the_checkout_box_to_speak() -> None:
    """A guest's `customer: null`: names from the billing address, consent from the checkout box."""
    event = purchase(shopify_order(customer=None, buyer_accepts_marketing=False))
    assert event["customer"] == {
        "first_name": "Jane",
        "last_name": "Doe",
        "locale": "en-CA",
        "marketing": "not_subscribed",
    }


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("en-CA", "en-CA"),
        ("de", "de"),
        ("pt-BR", "pt-BR"),
        ("zh-Hant-TW", "zh-Hant-TW"),
        ("", None),
        (None, None),
        ("english please", None),
        ("e", None),
        ("en\nCA", None),
        (42, None),
    ],
)
def test_the_locale_is_kept_only_when_it_is_a_language_code(given: Any, kept: str | None) -> None:
    """`customer_locale` is kept when a customers CSV would take it, else left out."""
    event = purchase(shopify_order(customer_locale=given))
    assert event["customer"].get("locale") == kept
    if kept is not None:
        assert LOCALE.match(kept)


def test_names_never_mix_two_people() -> None:
    """First and last name come from one source: never one from the customer, one from billing."""
    order = shopify_order()
    order["customer"]["last_name"] = None
    assert purchase(order)["customer"]["first_name"] == "Jane"
    assert "last_name" not in purchase(order)["customer"]
    order["customer"]["first_name"] = None
    order["billing_address"] = None
    names = purchase(order)["customer"]
    assert (names["first_name"], names["last_name"]) == ("Sam", "Gift")


def test_names_are_one_line_and_bounded() -> None:
    """A name with line breaks, separators or a NUL is one line of words, cut to TEXT_MAX."""
    order = shopify_order()
    order["customer"]["first_name"] = " Jane\r\n\u2028Marie\x00 "
    order["customer"]["last_name"] = "D" * 500
    customer = purchase(order)["customer"]
    assert customer["first_name"] == "Jane Marie"
    assert len(customer["last_name"]) == shops.TEXT_MAX
    assert customer["last_name"].endswith("…")


def test_an_order_without_an_address_records_nothing() -> None:
    """A point-of-sale order with no email anywhere is handled and gives no event."""
    assert (
        shops.shopify_events("orders/create", payload("shopify-orders-create-pos-no-email.json"))
        == []
    )


@pytest.mark.parametrize("order_id", [None, "", True, -1, "12 34", {"id": 1}])
def test_an_order_without_a_usable_id_records_nothing(order_id: Any) -> None:
    """An order without a usable id gives no event rather than a purchase a retry counts twice."""
    assert shops.shopify_events("orders/create", shopify_order(id=order_id)) == []
    assert shops.woocommerce_events("order.created", woo(id=order_id)) == []


def test_the_address_comes_from_the_order_then_its_contact_then_the_customer() -> None:
    """The address is `email`, else `contact_email`, else the customer record's `email`."""
    assert purchase(shopify_order(email=""))["email"] == "jane.doe@example.com"
    order = shopify_order(email=None, contact_email=None)
    order["customer"]["email"] = "record@example.com"
    assert purchase(order)["email"] == "record@example.com"


@pytest.mark.parametrize("created_at", ["yesterday", "2021-13-45T00:00:00Z", "0001-01-01", 1])
def test_a_time_the_api_would_refuse_is_left_out(created_at: Any) -> None:
    """A time that is no ISO 8601 instant in range is left out (recorded now), not refused."""
    assert "at" not in purchase(shopify_order(created_at=created_at, processed_at=None))


def test_an_address_that_is_no_address_is_skipped_for_the_next() -> None:
    """An `email` that is no address gives way to `contact_email`; addresses are normalised."""
    order = shopify_order(email="not an address", contact_email=" Jane.Doe@Example.COM ")
    assert purchase(order)["email"] == "jane.doe@example.com"


def test_the_time_is_created_at_else_processed_at() -> None:
    """The time is `created_at`, else `processed_at`, else left out (the API then says now)."""
    assert purchase(shopify_order(created_at=None))["at"] == "2027-01-21T10:14:58-05:00"
    assert "at" not in purchase(shopify_order(created_at=None, processed_at=None))


@pytest.mark.parametrize(
    ("given", "currency"),
    [("CAD", "CAD"), ("eur", "EUR"), (" usd ", "USD"), ("dollars", None), (None, None)],
)
def test_the_currency_is_an_upper_case_iso_code(given: Any, currency: str | None) -> None:
    """The currency is an upper-cased ISO 4217 code; anything else is left out."""
    assert purchase(shopify_order(currency=given))["data"].get("currency") == currency


@pytest.mark.parametrize(
    ("given", "amount"),
    [("69.50", "69.50"), (69.5, "69.5"), ("0.00", "0.00"), ("-4", "0"), ("lots", "0"), (None, "0")],
)
def test_the_amount_is_a_decimal_string_the_api_accepts(given: Any, amount: str) -> None:
    """`total_price` is a decimal string; what is no amount of zero or more is "0"."""
    data = purchase(shopify_order(total_price=given))["data"]
    assert data["amount"] == amount
    amount_cents(data["amount"])


def test_a_title_with_a_line_break_is_one_line_in_items_and_product() -> None:
    """A title typed with a line break is one line in `items` and `product` (subjects show it)."""
    data = purchase(payload("shopify-orders-create-not-subscribed.json"))["data"]
    assert data["items"] == [
        {"name": "Ethiopia Guji Limited Lot (250 g)", "quantity": 2, "price": "18.50"}
    ]
    assert data["product"] == "Ethiopia Guji Limited Lot (250 g)"
    check_header_fields(data, None)


def test_the_product_summary_counts_every_line_and_items_stay_bounded() -> None:
    """60 lines: `items` keeps MAX_ITEMS, `product` counts all; "Default Title" is no variant."""
    order = shopify_order()
    first = order["line_items"][0]
    order["line_items"] = [
        {**first, "title": f"Bag {n}", "variant_title": "Default Title"} for n in range(60)
    ]
    data = purchase(order)["data"]
    assert len(data["items"]) == shops.MAX_ITEMS
    assert data["items"][0] == {"name": "Bag 0", "quantity": 2, "price": "18.50"}
    assert data["product"] == "Bag 0 and 59 more"


def test_lines_without_a_title_fall_back_to_their_name_and_nameless_lines_are_skipped() -> None:
    """A line without `title` uses its `name`; a line with neither is not listed."""
    order = shopify_order()
    order["line_items"][0]["title"] = None
    order["line_items"][0]["variant_title"] = None
    order["line_items"][1] = {"id": 1, "quantity": 1}
    data = purchase(order)["data"]
    assert [item["name"] for item in data["items"]] == [
        "Ethiopia Guji - 250 g",
        "Paper filters",
    ]
    assert data["product"] == "Ethiopia Guji - 250 g and 1 more"


def test_an_order_without_lines_has_no_items_or_product() -> None:
    """No lines, no `items` and no `product` keys (never empty values)."""
    data = purchase(shopify_order(line_items=[]))["data"]
    assert "items" not in data
    assert "product" not in data


def test_the_referral_code_comes_from_the_landing_site_then_a_discount_code() -> None:
    """`ref` is the landing site's `?ref=`, else a discount code shaped like a referral code."""
    assert purchase(shopify_order())["data"]["ref"] == "k3v9x2m8q4w7"
    order = shopify_order(landing_site="/collections/all")
    assert "ref" not in purchase(order)["data"]
    order["discount_codes"].append({"code": "ABCD2345EF", "amount": "0.00", "type": "percentage"})
    assert purchase(order)["data"]["ref"] == "abcd2345ef"


# --- Shopify refunds/create -------------------------------------------------------------


def refund_of(name: str = "shopify-refunds-create.json", **changes: Any) -> dict[str, Any]:
    refund = payload(name)
    refund.update(changes)
    return refund


def transaction(amount: str, *, kind: str = "refund", status: str = "success") -> dict[str, Any]:
    return {"kind": kind, "status": status, "amount": amount, "currency": "USD", "gateway": "x"}


def test_shopifys_documented_refund_names_its_purchase_instead_of_an_address() -> None:
    """Shopify's refund has no address: it names its purchase (`order_event`); lines' currency."""
    assert shops.shopify_events("refunds/create", payload("shopify-refunds-create.json")) == [
        {
            "type": "refund",
            "id": "shopify:refund:890088186047892319",
            "order_event": "shopify:order:820982911946154508",
            "at": "2021-12-31T19:00:00-05:00",
            "data": {
                "order": "shopify:order:820982911946154508",
                "amount": "89.99",
                "currency": "USD",
            },
        }
    ]


def test_a_refund_is_the_sum_of_its_successful_refund_transactions() -> None:
    """Sums successful refund transactions; failed, pending and other kinds don't count."""
    refund = refund_of(
        transactions=[
            transaction("20.00"),
            transaction("10.50"),
            transaction("99.00", status="failure"),
            transaction("5.00", status="pending"),
            transaction("7.00", kind="sale"),
        ]
    )
    data = one(shops.shopify_events("refunds/create", refund))["data"]
    assert (data["amount"], data["currency"]) == ("30.50", "USD")


def test_a_restock_without_money_back_records_nothing() -> None:
    """A refund whose transactions are an empty list returned no money: []."""
    assert (
        shops.shopify_events("refunds/create", payload("shopify-refunds-create-restock-only.json"))
        == []
    )


def test_a_refund_whose_transactions_all_failed_records_nothing() -> None:
    """Only failed refund attempts: no money went back, nothing to record."""
    refund = refund_of(transactions=[transaction("89.99", status="failure")])
    assert shops.shopify_events("refunds/create", refund) == []


def test_without_transactions_the_refunded_lines_and_their_tax_are_the_amount() -> None:
    """Without a `transactions` key the lines' shop-money subtotal plus tax is the amount."""
    event = one(
        shops.shopify_events(
            "refunds/create", payload("shopify-refunds-create-no-transactions.json")
        )
    )
    assert event["id"] == "shopify:refund:1027534954658"
    assert event["order_event"] == "shopify:order:5940139524002"
    assert event["data"] == {
        "order": "shopify:order:5940139524002",
        "amount": "22.02",
        "currency": "EUR",
    }


def test_refunded_lines_without_money_sets_use_their_plain_numbers() -> None:
    """Refunded lines with only plain `subtotal` and `total_tax` numbers still add up."""
    refund = refund_of("shopify-refunds-create-no-transactions.json")
    for line in refund["refund_line_items"]:
        del line["subtotal_set"], line["total_tax_set"]
    data = one(shops.shopify_events("refunds/create", refund))["data"]
    assert data["amount"] == "22.02"
    assert data["currency"] == "EUR"  # from the line item's price_set


def test_a_refund_with_an_address_uses_it() -> None:
    """A refund payload that carries an address is recorded by it, with no `order_event`."""
    event = one(shops.shopify_events("refunds/create", refund_of(email="jon@example.com")))
    assert event["email"] == "jon@example.com"
    assert "order_event" not in event


@pytest.mark.parametrize("missing", ["id", "order_id"])
def test_a_refund_without_its_ids_records_nothing(missing: str) -> None:
    """A refund without its own id or its order's id gives no event."""
    refund = refund_of()
    del refund[missing]
    assert shops.shopify_events("refunds/create", refund) == []


@pytest.mark.parametrize(
    "topic",
    ["orders/paid", "orders/updated", "customers/create", "app/uninstalled", "", "refunds"],
)
def test_other_shopify_topics_are_not_handled(topic: str) -> None:
    """Any topic but orders/create and refunds/create is None: answered 200, ignored."""
    assert shops.shopify_events(topic, payload("shopify-orders-create.json")) is None


def test_topics_are_read_without_regard_to_case_or_spaces() -> None:
    """A header value " Orders/Create" is the orders/create topic."""
    assert shops.shopify_events(" Orders/Create", payload("shopify-orders-create.json"))


# --- WooCommerce ------------------------------------------------------------------------


def woo(name: str = "woocommerce-order-created.json", **changes: Any) -> dict[str, Any]:
    order = payload(name)
    order.update(changes)
    return order


def test_a_woocommerce_order_is_one_purchase_with_every_field() -> None:
    """order.created is exactly this purchase: UTC time, decoded item names, billing names."""
    assert shops.woocommerce_events("order.created", payload("woocommerce-order-created.json")) == [
        {
            "type": "purchase",
            "id": "woocommerce:order:727",
            "email": "john.doe@example.com",
            "at": "2017-03-22T19:28:02Z",
            "data": {
                "amount": "29.35",
                "currency": "USD",
                "order": "727",
                "ref": "k3v9x2m8q4w7",
                "items": [
                    {"name": "Woo Single #1", "quantity": 2, "price": "3.00"},
                    {
                        "name": "Ship Your Idea – Color: Black, Size: M Test",
                        "quantity": 1,
                        "price": "12.00",
                    },
                ],
                "product": "Woo Single #1 and 1 more",
            },
            "customer": {"first_name": "John", "last_name": "Doe"},
        }
    ]


@pytest.mark.parametrize(
    ("price", "total", "shown"),
    [
        (3, "6.00", "3.00"),
        (3.3333333333333335, "10.00", "3.33"),
        (1200, "1200", "1200"),
        ("x", "1", None),
    ],
)
def test_woocommerce_line_prices_take_the_places_of_the_line_total(
    price: Any, total: str, shown: str | None
) -> None:
    """A line's float `price` has the decimal places of its `total`; no number, no price."""
    order = woo()
    order["line_items"][0].update({"price": price, "total": total})
    item = one(shops.woocommerce_events("order.created", order))["data"]["items"][0]
    assert item.get("price") == shown


def test_a_woocommerce_item_name_that_encodes_a_line_break_is_one_line() -> None:
    """An HTML-encoded line break in an item name is decoded, then made one line."""
    order = woo()
    order["line_items"][0]["name"] = "Kenya&#10;AA &amp; more"
    data = one(shops.woocommerce_events("order.created", order))["data"]
    assert data["items"][0]["name"] == "Kenya AA & more"
    assert data["product"] == "Kenya AA & more and 1 more"


def test_woocommerce_times_are_utc_unless_they_say_otherwise() -> None:
    """`date_created_gmt` without a zone gets `Z`; one with an offset keeps it."""
    order = woo(date_created_gmt="2017-03-22T19:28:02+00:00")
    assert (
        one(shops.woocommerce_events("order.created", order))["at"] == "2017-03-22T19:28:02+00:00"
    )
    order = woo(date_created_gmt=None)
    assert "at" not in one(shops.woocommerce_events("order.created", order))


def test_a_woocommerce_order_without_a_billing_address_records_nothing() -> None:
    """An order without a billing email gives no event."""
    order = woo()
    order["billing"]["email"] = ""
    assert shops.woocommerce_events("order.created", order) == []


def test_a_woocommerce_referral_code_may_come_from_a_coupon() -> None:
    """Without a `ref` meta entry, a coupon code shaped like a referral code is the `ref`."""
    order = woo()
    order["meta_data"] = [m for m in order["meta_data"] if m["key"] != "ref"]
    assert "ref" not in one(shops.woocommerce_events("order.created", order))["data"]
    order["coupon_lines"] = [{"id": 1, "code": "zq81mmx2ka", "discount": "1.00"}]
    assert one(shops.woocommerce_events("order.created", order))["data"]["ref"] == "zq81mmx2ka"


def test_an_order_refunded_in_full_is_one_refund_of_its_entry() -> None:
    """A refunded order's entry of "-29.35" is a refund of 29.35 for `woocommerce:order:727`."""
    assert shops.woocommerce_events(
        "order.updated", payload("woocommerce-order-refunded.json")
    ) == [
        {
            "type": "refund",
            "id": "woocommerce:refund:730",
            "email": "john.doe@example.com",
            "at": "2017-03-24T13:05:31Z",
            "data": {"order": "woocommerce:order:727", "amount": "29.35", "currency": "USD"},
        }
    ]


def test_the_docs_partially_refunded_order_is_one_refund_per_entry() -> None:
    """The docs' order 723 with two refunds (older `refund` key) gives one refund per entry."""
    events = shops.woocommerce_events(
        "order.updated", payload("woocommerce-order-partially-refunded.json")
    )
    assert events is not None
    assert [(e["id"], e["data"]["amount"]) for e in events] == [
        ("woocommerce:refund:726", "10.00"),
        ("woocommerce:refund:724", "9.00"),
    ]
    assert {e["email"] for e in events} == {"joao.silva@example.com"}
    assert {e["data"]["order"] for e in events} == {"woocommerce:order:723"}


def test_an_update_that_is_no_refund_records_nothing() -> None:
    """An order updated to completed, without refunds, is handled and gives []."""
    assert (
        shops.woocommerce_events("order.updated", payload("woocommerce-order-updated.json")) == []
    )


def test_an_order_marked_refunded_without_entries_is_a_refund_of_its_total() -> None:
    """Status refunded without entries: one refund of the order total, id `...refund:order-727`."""
    order = woo("woocommerce-order-refunded.json", refunds=[])
    event = one(shops.woocommerce_events("order.updated", order))
    assert event["id"] == "woocommerce:refund:order-727"
    assert event["data"] == {"order": "woocommerce:order:727", "amount": "29.35", "currency": "USD"}


def test_refund_entries_of_nothing_or_without_an_id_are_skipped() -> None:
    """Entries of "-0.00" or without an id are skipped; a positive legacy total still counts."""
    order = woo(
        "woocommerce-order-updated.json",
        refunds=[
            {"id": 1, "reason": "", "total": "-0.00"},
            {"reason": "", "total": "-5.00"},
            {"id": 3, "reason": "", "total": 4.5},
        ],
    )
    events = shops.woocommerce_events("order.updated", order)
    assert events is not None
    assert [(e["id"], e["data"]["amount"]) for e in events] == [("woocommerce:refund:3", "4.5")]


def test_a_woocommerce_refund_without_a_billing_address_names_its_purchase() -> None:
    """A refund of an order without a billing email names its purchase by `order_event`."""
    order = woo("woocommerce-order-refunded.json")
    order["billing"]["email"] = ""
    event = one(shops.woocommerce_events("order.updated", order))
    assert event["order_event"] == "woocommerce:order:727"
    assert "email" not in event


@pytest.mark.parametrize(
    "topic",
    ["order.deleted", "order.restored", "product.created", "customer.created", "action.x", ""],
)
def test_other_woocommerce_topics_are_not_handled(topic: str) -> None:
    """Any topic but order.created and order.updated is None: answered 200, ignored."""
    assert shops.woocommerce_events(topic, payload("woocommerce-order-refunded.json")) is None


def test_order_created_is_a_purchase_even_for_an_order_already_refunded() -> None:
    """order.created reads the purchase only, whatever the order's status and refunds."""
    event = one(
        shops.woocommerce_events("order.created", payload("woocommerce-order-refunded.json"))
    )
    assert event["type"] == "purchase"


# --- every output is something the events API takes -------------------------------------


EXAMPLES = [
    ("shopify", "orders/create", "shopify-orders-create.json"),
    ("shopify", "orders/create", "shopify-orders-create-not-subscribed.json"),
    ("shopify", "orders/create", "shopify-orders-create-buyer-accepts-only.json"),
    ("shopify", "refunds/create", "shopify-refunds-create.json"),
    ("shopify", "refunds/create", "shopify-refunds-create-no-transactions.json"),
    ("woocommerce", "order.created", "woocommerce-order-created.json"),
    ("woocommerce", "order.updated", "woocommerce-order-refunded.json"),
    ("woocommerce", "order.updated", "woocommerce-order-partially-refunded.json"),
]


def events_of(shop: str, topic: str, body: dict[str, Any]) -> list[dict[str, Any]] | None:
    read = shops.shopify_events if shop == "shopify" else shops.woocommerce_events
    return read(topic, body)


def assert_takeable(event: dict[str, Any]) -> None:
    """What the events API and a customers CSV row would accept, and only these keys."""
    assert set(event) <= {"type", "id", "email", "order_event", "at", "data", "customer"}
    assert ("email" in event) != ("order_event" in event)
    check_event_id(event["id"])
    if "email" in event:
        assert normalize_email(event["email"]) == event["email"]
    if "at" in event:
        parse_instant(event["at"])
    check_event_data(event["data"])
    check_header_fields(event["data"], None)  # every string one line
    money = event_money(event["type"], event["data"], "USD")  # a refund: more than 0
    assert money is not None
    customer = event.get("customer", {})
    assert set(customer) <= {"first_name", "last_name", "locale", "marketing", "timezone_hint"}
    if "timezone_hint" in customer:
        assert is_valid_timezone(customer["timezone_hint"])
    for key in ("first_name", "last_name"):
        if key in customer:
            assert is_one_line(customer[key])
            assert 0 < len(customer[key]) <= shops.TEXT_MAX
    if "locale" in customer:
        assert LOCALE.match(customer["locale"])
    assert customer.get("marketing", "subscribed") in {
        "subscribed",
        "not_subscribed",
        "unsubscribed",
    }


@pytest.mark.parametrize(("shop", "topic", "name"), EXAMPLES)
def test_every_example_gives_events_the_api_takes(shop: str, topic: str, name: str) -> None:
    """Each fixture's events have the documented keys and values the events API accepts."""
    events = events_of(shop, topic, payload(name))
    assert events
    for event in events:
        assert_takeable(event)


# Any text JSON can carry, lone surrogates and control characters included.
TEXT = st.text(st.characters(blacklist_categories=()), max_size=30)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "id", "order_id", "email", "contact_email", "total_price", "total", "currency", "name",
    "number", "created_at", "date_created_gmt", "date_modified_gmt", "customer_locale",
    "buyer_accepts_marketing", "customer", "billing", "billing_address", "line_items",
    "transactions", "refund_line_items", "refunds", "status", "landing_site", "meta_data",
    "first_name", "last_name", "email_marketing_consent", "title", "variant_title", "price",
    "quantity", "discount_codes", "coupon_lines",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    example=st.sampled_from(EXAMPLES),
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
    nested=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), max_size=3),
)
def test_any_payload_gives_takeable_events_or_none_and_never_raises(
    example: tuple[str, str, str],
    changes: dict[str, Any],
    nested: list[tuple[str, Any]],
) -> None:
    """Whatever the fields read hold, the adapters never raise and give only acceptable events."""
    shop, topic, name = example
    body = copy.deepcopy(payload(name))
    body.update(changes)
    holders = [body.get(key) for key in ("customer", "billing", "billing_address")]
    for key in ("line_items", "transactions", "refund_line_items", "refunds"):
        listed = body.get(key)
        holders += listed if isinstance(listed, list) else []
    for field, value in nested:  # reach into the lines, people and refunds too
        for holder in holders:
            if isinstance(holder, dict):
                holder[field] = value
    events = events_of(shop, topic, body)
    assert events is not None
    for event in events:
        assert_takeable(event)


# --- signatures -------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256)).decode()


def test_a_signature_of_the_raw_body_with_the_secret_is_accepted() -> None:
    """base64(HMAC-SHA256(secret, raw body)) is accepted, with spaces around it too."""
    body = (SHOPS / "shopify-orders-create.json").read_bytes()
    assert shops.signature_ok(body, sign(body, "s3cret"), "s3cret")
    assert shops.signature_ok(body, f" {sign(body, 's3cret')}\t", "s3cret")


@pytest.mark.parametrize(
    ("header", "secret", "body"),
    [
        (None, "s3cret", b"{}"),
        ("", "s3cret", b"{}"),
        ("valid-for-other-secret", "s3cret", b"{}"),
        ("valid", "", b"{}"),
        ("valid", "s3cret", b"{} "),
        ("not base64 at all", "s3cret", b"{}"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(
    header: str | None, secret: str, body: bytes
) -> None:
    """No header, no secret, another secret, a changed body or garbage: refused."""
    signed = b"{}"
    if header == "valid":
        header = sign(signed, "s3cret")
    elif header == "valid-for-other-secret":
        header = sign(signed, "another")
    assert not shops.signature_ok(body, header, secret)


@pytest.mark.parametrize(
    ("country", "zone"),
    [("DE", "Europe/Berlin"), ("jp", "Asia/Tokyo"), ("US", None), ("ES", None), ("ZZ", None)],
)
def test_a_country_with_one_time_zone_gives_it_as_a_hint(country: str, zone: str | None) -> None:
    """The billing country's time zone is a hint only where the country has just one (a
    shop knows no customer's zone); several (US, Spain's islands) or none give nothing."""
    order = payload("shopify-orders-create.json")
    order["billing_address"] = {**order["billing_address"], "country_code": country}
    order["shipping_address"] = None
    order["customer"] = {**order["customer"], "default_address": None}
    assert purchase(order).get("customer", {}).get("timezone_hint") == zone

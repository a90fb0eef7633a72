"""Shopify's webhooks (`X-Shopify-Topic`, REST-shaped JSON bodies) as dripper events."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from dripper.web.shops.common import (
    Event,
    amount_text,
    currency_of,
    decimal_of,
    email_of,
    id_part,
    instant_of,
    locale_of,
    mapping_of,
    money_text,
    names_of,
    new_event,
    one_line,
    put,
    put_lines,
    ref_from_codes,
    ref_from_url,
    refund_event,
    returns_money,
    text_of,
    zone_of,
)

_MARKETING = {
    "subscribed": "subscribed",
    "not_subscribed": "not_subscribed",
    "pending": "not_subscribed",  # double opt-in not confirmed yet: not a yes
    "unsubscribed": "unsubscribed",
}


def shopify_events(topic: str, payload: Mapping[str, Any]) -> list[Event] | None:
    """The events of one Shopify webhook (`X-Shopify-Topic`), None for a topic not handled.

    `orders/create`: a purchase of `total_price` in the shop's `currency`, with the lines
    ordered, the referral code of the landing-site URL (`?ref=`) or of a discount code, and
    the customer's names (customer, else billing, else shipping address), locale
    (`customer_locale`) and consent (`customer.email_marketing_consent.state`, else
    `buyer_accepts_marketing`). No address: [].

    `refunds/create`: a refund of the money returned, the successful `refund` transactions;
    only a payload without `transactions` falls back to its lines' subtotals and taxes. The
    payload has no address, so the event names the purchase by `order_event` instead of
    `email` (an address is used if one is there). Nothing returned: [].
    """
    kind = topic.strip().lower()
    if kind == "orders/create":
        return _purchase(payload)
    if kind == "refunds/create":
        return _refund(payload)
    return None


def _purchase(order: Mapping[str, Any]) -> list[Event]:
    order_id, email = id_part(order.get("id")), email_of(order)
    if not order_id or not email:
        return []  # without its id a retried delivery would count twice
    data: dict[str, Any] = {"amount": amount_text(order.get("total_price"))}
    put(data, "currency", currency_of(order.get("currency")))
    put(data, "order", one_line(order.get("name")) or order_id)
    ref = ref_from_url(text_of(order.get("landing_site"))) or ref_from_codes(
        order.get("discount_codes")
    )
    put(data, "ref", ref)
    put_lines(data, order.get("line_items"), _line)
    customer = names_of(
        mapping_of(order, "customer"),
        mapping_of(order, "billing_address"),
        mapping_of(order, "shipping_address"),
    )
    put(customer, "locale", locale_of(order.get("customer_locale")))
    put(
        customer,
        "timezone_hint",
        zone_of(
            mapping_of(order, "billing_address").get("country_code"),
            mapping_of(order, "shipping_address").get("country_code"),
            mapping_of(mapping_of(order, "customer"), "default_address").get("country_code"),
        ),
    )
    put(customer, "marketing", _marketing(order))
    at = instant_of(order.get("created_at")) or instant_of(order.get("processed_at"))
    return [new_event("purchase", f"shopify:order:{order_id}", email, at, data, customer)]


def _line(line: Mapping[str, Any]) -> tuple[str | None, Any]:
    title = one_line(line.get("title")) or one_line(line.get("name"))
    variant = one_line(line.get("variant_title"))
    if title and variant and variant != "Default Title":  # Shopify's name for "no variants"
        title = f"{title} ({variant})"
    return title, money_text(decimal_of(line.get("price")))


def _marketing(order: Mapping[str, Any]) -> str | None:
    consent = mapping_of(mapping_of(order, "customer"), "email_marketing_consent")
    state = consent.get("state")
    if isinstance(state, str) and state.strip().lower() in _MARKETING:
        return _MARKETING[state.strip().lower()]
    # Redacted, invalid or no consent object: the checkout's box is the only word left.
    accepts = order.get("buyer_accepts_marketing")
    if isinstance(accepts, bool):
        return "subscribed" if accepts else "not_subscribed"
    return None


def _refund(refund: Mapping[str, Any]) -> list[Event]:
    refund_id = id_part(refund.get("id"))
    order_id = id_part(refund.get("order_id"))
    if not refund_id or not order_id:
        return []  # nothing to name it by, nothing to attach it to
    amount, currency = _refunded(refund)
    if not returns_money(amount):
        return []  # a restock or a note: no money went back
    purchase = f"shopify:order:{order_id}"
    data: dict[str, Any] = {"order": purchase, "amount": money_text(amount)}
    put(data, "currency", currency)
    at = instant_of(refund.get("created_at")) or instant_of(refund.get("processed_at"))
    return [refund_event(f"shopify:refund:{refund_id}", email_of(refund), purchase, at, data)]


def _refunded(refund: Mapping[str, Any]) -> tuple[Decimal, str | None]:
    """The money a refund returned and its currency. The transactions say what was paid
    back; their absence (not an empty list, which is a refund of nothing) leaves the lines'
    subtotals and taxes as the best word."""
    transactions = refund.get("transactions")
    if not isinstance(transactions, list):
        return _refund_lines(refund)
    total, currency = Decimal(0), None
    for item in transactions:
        if not isinstance(item, Mapping):
            continue
        if item.get("kind") != "refund" or item.get("status") != "success":
            continue  # a failed or pending attempt returned nothing (yet)
        amount = decimal_of(item.get("amount"))
        if amount is not None and amount > 0:
            total += amount
            currency = currency or currency_of(item.get("currency"))
    # Shopify's documented payload sends the transaction's currency as null.
    return total, currency or _refund_lines(refund)[1]


def _refund_lines(refund: Mapping[str, Any]) -> tuple[Decimal, str | None]:
    total, currency = Decimal(0), None
    lines = refund.get("refund_line_items")
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping):
            continue
        for key in ("subtotal", "total_tax"):
            shop = mapping_of(mapping_of(line, f"{key}_set"), "shop_money")
            amount = decimal_of(shop.get("amount"))
            if amount is None:
                amount = decimal_of(line.get(key))
            if amount is not None and amount > 0:
                total += amount
            currency = currency or currency_of(shop.get("currency_code"))
        price = mapping_of(mapping_of(mapping_of(line, "line_item"), "price_set"), "shop_money")
        currency = currency or currency_of(price.get("currency_code"))
    return total, currency

"""WooCommerce's order webhooks (`X-WC-Webhook-Topic`; the body is the REST API v3 order)
as dripper events."""

from __future__ import annotations

import html
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
    mapping_of,
    money_text,
    names_of,
    new_event,
    one_line,
    places_of,
    put,
    put_lines,
    ref_from_codes,
    ref_of,
    refund_event,
    returns_money,
    text_of,
    zone_of,
)


def woocommerce_events(topic: str, payload: Mapping[str, Any]) -> list[Event] | None:
    """The events of one WooCommerce webhook (`X-WC-Webhook-Topic`), None for a topic not
    handled. The payload is the REST API's order.

    `order.created`: a purchase of `total` in the order's `currency` at `date_created_gmt`
    (read as UTC), with its lines, a `ref` from the order's meta data or coupon lines, and
    the billing names. WooCommerce keeps no marketing consent: left alone.

    `order.updated`: a refund per entry of the order's `refunds` (`total` is negative:
    the amount is its size). An order `refunded` without entries is one refund of its total,
    id `woocommerce:refund:order-<order id>`. Any other update: []. Every update lists
    every refund so far; their ids make the repeats record nothing. Without a billing
    address the refunds name the purchase by `order_event`.
    """
    kind = topic.strip().lower()
    if kind == "order.created":
        return _purchase(payload)
    if kind == "order.updated":
        return _refunds(payload)
    return None


def _purchase(order: Mapping[str, Any]) -> list[Event]:
    order_id, email = id_part(order.get("id")), email_of(mapping_of(order, "billing"))
    if not order_id or not email:
        return []  # without its id a retried delivery would count twice
    data: dict[str, Any] = {"amount": amount_text(order.get("total"))}
    put(data, "currency", currency_of(order.get("currency")))
    put(data, "order", one_line(order.get("number")) or order_id)
    put(data, "ref", _referral(order))
    put_lines(data, order.get("line_items"), _line)
    customer = names_of(mapping_of(order, "billing"), mapping_of(order, "shipping"))
    put(
        customer,
        "timezone_hint",
        zone_of(
            mapping_of(order, "billing").get("country"),
            mapping_of(order, "shipping").get("country"),
        ),
    )
    at = instant_of(order.get("date_created_gmt"), utc=True)
    return [new_event("purchase", f"woocommerce:order:{order_id}", email, at, data, customer)]


def _line(line: Mapping[str, Any]) -> tuple[str | None, Any]:
    # WordPress stores item names HTML-encoded ("Ship Your Idea &ndash; Color: Black").
    raw = line.get("name")
    name = one_line(html.unescape(raw)) if isinstance(raw, str) else None
    # `price` is a float (total / quantity): shown with the places of the line's total.
    price = decimal_of(line.get("price"))
    places = places_of(line.get("total"))
    if price is not None:
        price = price.quantize(Decimal(1).scaleb(-places))
    return name, money_text(price)


def _referral(order: Mapping[str, Any]) -> str | None:
    meta = order.get("meta_data")
    for item in meta if isinstance(meta, list) else []:
        if isinstance(item, Mapping) and item.get("key") in ("ref", "ref_of", "referral"):
            found = ref_of(text_of(item.get("value")))
            if found:
                return found
    return ref_from_codes(order.get("coupon_lines"))


def _refunds(order: Mapping[str, Any]) -> list[Event]:
    order_id = id_part(order.get("id"))
    if not order_id:
        return []
    purchase = f"woocommerce:order:{order_id}"
    email = email_of(mapping_of(order, "billing"))
    currency = currency_of(order.get("currency"))
    at = instant_of(order.get("date_modified_gmt"), utc=True)  # entries carry no time
    listed = order.get("refunds")
    entries: list[Any] = listed if isinstance(listed, list) else []
    events: list[Event] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        refund_id = id_part(entry.get("id"))
        amount = decimal_of(entry.get("total"))
        # REST v2/v3 give "-10.00"; the legacy API gave a positive float.
        if refund_id and amount is not None and returns_money(abs(amount)):
            data = _refund_data(purchase, abs(amount), currency)
            event_id = f"woocommerce:refund:{refund_id}"
            events.append(refund_event(event_id, email, purchase, at, data))
    if not entries and text_of(order.get("status")) == "refunded":
        total = decimal_of(order.get("total"))
        if total is not None and returns_money(total):
            data = _refund_data(purchase, total, currency)
            event_id = f"woocommerce:refund:order-{order_id}"
            events.append(refund_event(event_id, email, purchase, at, data))
    return events


def _refund_data(purchase: str, amount: Decimal, currency: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"order": purchase, "amount": money_text(amount)}
    put(data, "currency", currency)
    return data

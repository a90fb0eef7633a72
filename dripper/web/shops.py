"""The webhooks a small shop already has, read as dripper events: Shopify's
`orders/create` and WooCommerce's `order.created`.

Pure: the raw body, its signature header and the shared secret in; the signature checked
in constant time, the order turned into the events API's shape
(`{"type": "purchase", "email": ..., "at": ..., "data": {...}}`) out. The events API then
records them with the same checks and decisions as `dripper event`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

REF = re.compile(r"[a-z0-9]{8,64}")


def signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    """Both shops sign the raw body: base64(HMAC-SHA256(secret, body)). Constant time."""
    if not header or not secret:
        return False
    expected = base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256)).decode()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def shopify_events(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An `orders/create` payload as a purchase (none for an order without an address).
    The referral code comes from the order's landing-site URL (`?ref=`) or a discount
    code of the same shape."""
    customer = order.get("customer") if isinstance(order.get("customer"), Mapping) else {}
    email = _text(order.get("email")) or _text(order.get("contact_email"))
    email = email or _text(customer.get("email") if customer else None)
    if not email:
        return []
    data: dict[str, Any] = {"amount": _text(order.get("total_price")) or "0"}
    _put(data, "currency", _text(order.get("currency")))
    _put(data, "order", _text(order.get("name")) or _text(order.get("id")))
    ref = _ref_from_url(_text(order.get("landing_site"))) or _ref_from_codes(
        order.get("discount_codes")
    )
    _put(data, "ref", ref)
    return [_event(email, _text(order.get("created_at")), data)]


def woocommerce_events(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An `order.created` payload as a purchase. WooCommerce's times are local to the
    shop unless `_gmt`: the `_gmt` one is read as UTC. A `ref` is read from the order's
    meta data (checkout plugins store it there) or its coupon lines."""
    billing = order.get("billing") if isinstance(order.get("billing"), Mapping) else {}
    email = _text(billing.get("email") if billing else None)
    if not email:
        return []
    data: dict[str, Any] = {"amount": _text(order.get("total")) or "0"}
    _put(data, "currency", _text(order.get("currency")))
    _put(data, "order", _text(order.get("number")) or _text(order.get("id")))
    ref = None
    meta = order.get("meta_data")
    if isinstance(meta, list):
        for item in meta:
            if isinstance(item, Mapping) and item.get("key") in ("ref", "_ref", "referral"):
                ref = _ref(_text(item.get("value")))
                if ref:
                    break
    _put(data, "ref", ref or _ref_from_codes(order.get("coupon_lines")))
    at = _text(order.get("date_created_gmt"))
    if at and not at.endswith("Z") and "+" not in at[10:]:
        at += "Z"
    return [_event(email, at, data)]


def _event(email: str, at: str | None, data: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "purchase", "email": email, "data": data}
    if at:
        event["at"] = at
    return event


def _ref_from_url(url: str | None) -> str | None:
    if not url:
        return None
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return None
    for value in query.get("ref", []):
        found = _ref(value)
        if found:
            return found
    return None


def _ref_from_codes(codes: Any) -> str | None:
    if not isinstance(codes, list):
        return None
    for item in codes:
        if isinstance(item, Mapping):
            found = _ref(_text(item.get("code")))
            if found:
                return found
    return None


def _ref(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text if REF.fullmatch(text) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _put(data: dict[str, Any], key: str, value: str | None) -> None:
    if value:
        data[key] = value

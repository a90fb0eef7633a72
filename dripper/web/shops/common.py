"""What the Shopify and WooCommerce adapters read the same way: texts made one line and
bounded, money, times, currency and locale codes, referral codes, the order's lines, and
the shape of the events they give the events API. Every reader is lenient: a value the API
would refuse is left out (None), never raised, since a refused webhook is retried for days.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dripper.customers.addresses import normalize_email
from dripper.errors import InputError
from dripper.money import check_currency
from dripper.timeparse import parse_instant

REF = re.compile(r"[a-z0-9]{8,64}")
TEXT_MAX = 200  # characters in one name or label
MAX_ITEMS = 50  # order lines listed in `items`; `product` still counts them all
MONEY_MAX = Decimal(10) ** 12  # beyond any order; keeps decimal sums far from overflow
ID_PART = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
CENT = Decimal("0.01")
LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}")  # as a customers CSV
_NOT_ONE_LINE = ("Cc", "Zl", "Zp")  # control characters and line/paragraph separators

Event = dict[str, Any]


# --- the events -------------------------------------------------------------------------


def new_event(
    kind: str,
    event_id: str,
    email: str,
    at: str | None,
    data: dict[str, Any],
    customer: dict[str, Any],
) -> Event:
    event: Event = {"type": kind, "id": event_id, "email": email}
    if at:
        event["at"] = at
    event["data"] = data
    if customer:
        event["customer"] = customer
    return event


def refund_event(
    event_id: str, email: str | None, purchase: str, at: str | None, data: dict[str, Any]
) -> Event:
    event: Event = {"type": "refund", "id": event_id}
    if email:
        event["email"] = email
    else:
        event["order_event"] = purchase  # the API records it for the purchase's customer
    if at:
        event["at"] = at
    event["data"] = data
    return event


def put_lines(
    data: dict[str, Any],
    lines: Any,
    read: Callable[[Mapping[str, Any]], tuple[str | None, Any]],
) -> None:
    """`items` (name, quantity, price per line) and `product`, a one-line summary:
    "Ethiopia Guji (250 g)" or "Ethiopia Guji (250 g) and 2 more"."""
    items: list[dict[str, Any]] = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping):
            continue
        name, price = read(line)
        if not name:
            continue
        item: dict[str, Any] = {"name": name}
        quantity = line.get("quantity")
        if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity >= 0:
            item["quantity"] = quantity
        put(item, "price", price)
        items.append(item)
    if not items:
        return
    data["items"] = items[:MAX_ITEMS]
    more = len(items) - 1
    data["product"] = items[0]["name"] + (f" and {more} more" if more else "")


def names_of(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """First and last name from the first source that has either: never a first name
    from the customer and a last name from the billing address."""
    for source in sources:
        names: dict[str, Any] = {}
        put(names, "first_name", one_line(source.get("first_name")))
        put(names, "last_name", one_line(source.get("last_name")))
        if names:
            return names
    return {}


def email_of(payload: Mapping[str, Any]) -> str | None:
    """The first address of the payload that is one (syntax only, as the API checks it)."""
    customer = mapping_of(payload, "customer")
    for value in (payload.get("email"), payload.get("contact_email"), customer.get("email")):
        text = text_of(value)
        if text and len(text) <= 320:
            try:
                return normalize_email(text)
            except ValueError:
                continue
    return None


# --- values -----------------------------------------------------------------------------


def one_line(value: Any, limit: int = TEXT_MAX) -> str | None:
    """Text as one line: control characters and line breaks become spaces, runs of
    spaces one, lone surrogates (not text) go; cut to `limit` characters."""
    text = text_of(value)
    if text is None:
        return None
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in _NOT_ONE_LINE:
            kept.append(" ")
        elif category != "Cs":
            kept.append(ch)
    text = " ".join("".join(kept).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or None


def id_part(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and ID_PART.fullmatch(value.strip()):
        return value.strip()
    return None


def decimal_of(value: Any) -> Decimal | None:
    """A shop's money value (a decimal string or a JSON number) as a Decimal; None for
    anything else, and for amounts no order reaches."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or abs(amount) > MONEY_MAX:
        return None
    return amount


def money_text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def amount_text(value: Any) -> str:
    """A purchase's amount: the shop's decimal, "0" when it sent none we can read (a
    purchase is still a purchase; an amount the API refuses would be retried for days)."""
    amount = decimal_of(value)
    return format(amount, "f") if amount is not None and amount >= 0 else "0"


def places_of(value: Any) -> int:
    amount = decimal_of(value)
    exponent = amount.as_tuple().exponent if amount is not None else -2
    return -exponent if isinstance(exponent, int) and -8 <= exponent <= 0 else 2


def returns_money(amount: Decimal | None) -> bool:
    """At least a cent: the events API refuses a refund of nothing."""
    return amount is not None and amount.quantize(CENT, rounding=ROUND_HALF_UP) > 0


def currency_of(value: Any) -> str | None:
    """An ISO 4217 code, upper-case; left out when it is none (the API would refuse it)."""
    try:
        return check_currency(value) if text_of(value) else None
    except InputError:
        return None


def instant_of(value: Any, *, utc: bool = False) -> str | None:
    """An ISO 8601 time the API reads as the shop meant it, or None (the API then says
    now): a time it would refuse would have the shop retry the delivery for days."""
    at = one_line(value, limit=64)
    if not at:
        return None
    if utc and not at.endswith("Z") and "+" not in at[10:] and "-" not in at[10:]:
        at += "Z"  # WooCommerce's `_gmt` times are UTC without saying so
    try:
        parse_instant(at)
    except ValueError:
        return None
    return at


def locale_of(value: Any) -> str | None:
    text = text_of(value)
    return text if text and len(text) <= 35 and LOCALE.fullmatch(text) else None


def ref_from_url(url: str | None) -> str | None:
    if not url:
        return None
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return None
    for value in query.get("ref", []):
        found = ref_of(value)
        if found:
            return found
    return None


def ref_from_codes(codes: Any) -> str | None:
    if not isinstance(codes, list):
        return None
    for item in codes:
        if isinstance(item, Mapping):
            found = ref_of(text_of(item.get("code")))
            if found:
                return found
    return None


def ref_of(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text if REF.fullmatch(text) else None


def mapping_of(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def text_of(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def put(data: dict[str, Any], key: str, value: str | None) -> None:
    if value:
        data[key] = value


def zone_of(*countries: Any) -> str | None:
    """The time zone of the first country given that has only one (the customer's
    billing country, then the shipping one): a shop knows no customer's time zone, and
    the shop's own is not theirs. A country with several (US, CA, ES) gives none."""
    from dripper.customers.addresses import country_timezone

    for country in countries:
        if isinstance(country, str) and len(country.strip()) == 2:
            return country_timezone(country)
    return None

"""Filters for marketers: dates and money in the customer's own time zone and locale.

    {{ customer.last_purchase_at|date }}          -> Mar 1, 2027 / 1 mars 2027
    {{ now|datetime("short") }}                   -> 3/1/27, 9:00 AM (customer's zone)
    {{ customer.birthday|date("d MMMM") }}        -> 14 July  (ISO strings are read too)
    {{ customer.total_spent|money }}              -> $1,234.50 / 1.234,50 $
    {{ 49|money("EUR") }}  {{ 1234.5|number }}  {{ 0.15|percent }}
    <html lang="{{ customer.locale|html_lang }}">  -> en-GB / pt-BR / und

Babel is imported on first use: `dripper --help` and previews stay quick.
"""

from __future__ import annotations

import functools
import html as htmllib
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from dripper.render.lang import html_lang
from dripper.render.sandbox import Record

if TYPE_CHECKING:
    from babel import Locale

DEFAULT_LOCALE = "en_US"


@functools.lru_cache(maxsize=256)
def _locale(name: str | None) -> Locale:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse((name or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        # A customer sheet with "english" in it must not stop their email.
        return Locale.parse(DEFAULT_LOCALE)


@functools.lru_cache(maxsize=256)
def _zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _customer_value(context: Context, key: str) -> Any:
    customer = context.get("customer")
    if isinstance(customer, Record) and key in customer:
        return customer[key]
    return None


def _as_datetime(value: Any) -> datetime | date:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"expected a date, a datetime or an ISO date string, got {value!r}")


def _as_number(value: Any) -> Decimal | int | float:
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return value
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None


def make_filters(default_timezone: str, default_currency: str) -> dict[str, Callable[..., Any]]:
    """The filters, bound to the project's fallback time zone and currency.

    Babel takes 10-20 us a call; the same value is formatted for the HTML and the text
    part of every email, and amounts and dates repeat across customers, so results are
    remembered (a bounded cache, keyed on everything that affects the result)."""
    memo: dict[tuple[Any, ...], str] = {}

    def remembered(context: Context, key: tuple[Any, ...], compute: Callable[[], str]) -> str:
        full = (*key, _customer_value(context, "locale"), _customer_value(context, "timezone"))
        try:
            found = memo.get(full)
        except TypeError:  # an unhashable value: format it, it will be refused or work
            return compute()
        if found is None:
            if len(memo) >= 8192:
                memo.clear()
            found = memo[full] = compute()
        return found

    def zone_of(context: Context) -> ZoneInfo:
        return _zone(_customer_value(context, "timezone"), default_timezone)

    def locale_of(context: Context) -> Locale:
        return _locale(_customer_value(context, "locale"))

    def local(context: Context, value: Any) -> datetime | date:
        moment = _as_datetime(value)
        if isinstance(moment, datetime):
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(zone_of(context))
        return moment

    @pass_context
    def date_filter(context: Context, value: Any, format: str = "medium") -> str:
        def compute() -> str:
            from babel.dates import format_date

            moment = local(context, value)
            day = moment.date() if isinstance(moment, datetime) else moment
            return str(format_date(day, format, locale=locale_of(context)))

        return remembered(context, ("date", value, format), compute)

    @pass_context
    def datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
        def compute() -> str:
            from babel.dates import format_datetime

            moment = local(context, value)
            if not isinstance(moment, datetime):
                moment = datetime.combine(moment, time(0), zone_of(context))
            zone = zone_of(context)
            return str(format_datetime(moment, format, tzinfo=zone, locale=locale_of(context)))

        return remembered(context, ("datetime", value, format), compute)

    @pass_context
    def time_filter(context: Context, value: Any, format: str = "short") -> str:
        from babel.dates import format_time

        moment = local(context, value)
        if not isinstance(moment, datetime):
            raise ValueError("the time filter needs a datetime, not a date")
        return str(format_time(moment, format, tzinfo=zone_of(context), locale=locale_of(context)))

    @pass_context
    def money_filter(context: Context, value: Any, currency: str | None = None) -> str:
        return remembered(
            context, ("money", value, currency), lambda: money(context, value, currency)
        )

    def money(context: Context, value: Any, currency: str | None) -> str:
        from babel.numbers import format_currency

        company = context.get("company")
        code = currency or (
            company["currency"] if isinstance(company, Record) and "currency" in company else None
        )
        return str(
            format_currency(
                _as_number(value), str(code or default_currency), locale=locale_of(context)
            )
        )

    @pass_context
    def number_filter(context: Context, value: Any, format: str | None = None) -> str:
        from babel.numbers import format_decimal

        return str(format_decimal(_as_number(value), format, locale=locale_of(context)))

    @pass_context
    def percent_filter(context: Context, value: Any, format: str | None = None) -> str:
        from babel.numbers import format_percent

        return str(format_percent(_as_number(value), format, locale=locale_of(context)))

    return {
        "breakable": breakable,
        "date": date_filter,
        "datetime": datetime_filter,
        "time": time_filter,
        "money": money_filter,
        "number": number_filter,
        "percent": percent_filter,
        "html_lang": html_lang,  # the customer's locale as an HTML lang: pt_BR -> pt-BR
    }


def breakable(value: Any) -> Markup:
    """A long link shown as text, with a break opportunity (`<wbr>`) after each `/`, `.`,
    `?`, `&` and every 16 characters: it wraps in mail clients that ignore `word-break`
    instead of being cut off at the right, and copies as it is."""
    text = str(value)
    parts: list[str] = []
    run = 0
    for char in text:
        parts.append(htmllib.escape(char, quote=True))
        run += 1
        if char in "/.?&=" or run >= 16:
            parts.append("<wbr>")
            run = 0
    return Markup("".join(parts))  # noqa: S704 (each character escaped above)

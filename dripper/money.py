"""Money that comes in with events: amounts in cents and the currency they are in.

Pure: values in, cents and a checked ISO 4217 code (or an InputError of one line) out.
Amounts of different currencies are never added together (DESIGN 12): a customer's
`total_spent`, the spend percentile and `stats` revenue count the company's currency
(`[company] currency`); other currencies are kept on the events and reported apart.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from dripper.errors import InputError

PURCHASE = "purchase"
REFUND = "refund"
MONEY_EVENTS = frozenset({PURCHASE, REFUND})
MAX_CENTS = 10**15  # ten trillion: anything above is a typo, and fits in a BIGINT
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class Money:
    """An event's amount: `cents` in `currency` (an upper-case ISO 4217 code)."""

    cents: int
    currency: str

    def counts_in(self, company_currency: str) -> int:
        """The cents that count towards a customer's spend: none in another currency."""
        return self.cents if self.currency == company_currency else 0


@functools.cache
def _known_currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def check_currency(value: Any, *, where: str = "currency") -> str:
    """An ISO 4217 code like `EUR` (any case given, upper-case returned)."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: expected a currency code like 'EUR' (ISO 4217)")
    code = value.strip().upper()
    if code not in _known_currencies():
        raise InputError(
            f"{where}: {_short(value)} is not an ISO 4217 currency code (like EUR, USD, GBP)"
        )
    return code


def event_money(
    type_: str, data: Mapping[str, Any], company_currency: str, *, where: str = "data"
) -> Money | None:
    """What a purchase or refund is worth; None for other events. A purchase without an
    `amount` is worth 0; a refund must return more than nothing."""
    if type_ not in MONEY_EVENTS:
        return None
    currency = (
        check_currency(data["currency"], where=f"{where}.currency")
        if data.get("currency") not in (None, "")
        else company_currency
    )
    cents = (
        amount_cents(data["amount"], what=f"{where}.amount: {type_} amount")
        if "amount" in data
        else 0
    )
    if type_ == REFUND and cents <= 0:
        raise InputError(
            f"{where}.amount: a refund needs the money returned, more than 0, like 12.50"
        )
    return Money(cents, currency)


def amount_cents(value: Any, *, what: str = "purchase amount") -> int:
    """An amount (a number or a decimal string) in cents."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InputError(_not_an_amount(what, value))
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InputError(_not_an_amount(what, value)) from None
    if not amount.is_finite() or amount < 0:
        raise InputError(_not_an_amount(what, value))
    # Compared before any arithmetic: 1e308 or 32 digits would overflow the decimal context.
    if amount > Decimal(MAX_CENTS).scaleb(-2):
        raise InputError(f"{what} {_short(value)}: too large")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def shown(cents: int, currency: str) -> str:
    """`31.90 EUR`: plain, for messages and the CLI (templates format by locale)."""
    return f"{Decimal(cents).scaleb(-2):.2f} {currency}"


def _not_an_amount(what: str, value: Any) -> str:
    # Written only when needed: an order history checks a million amounts.
    return f"{what} {_short(value)}: expected a number of zero or more, like 24.50"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..."

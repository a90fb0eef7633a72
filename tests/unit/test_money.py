"""Money that comes in with events (DESIGN 12): amounts in cents, ISO 4217 codes, refunds
that return something, and currencies that never add up together."""

from __future__ import annotations

from typing import Any

import pytest

from dripper.errors import InputError
from dripper.money import Money, amount_cents, check_currency, event_money


@pytest.mark.parametrize(
    ("given", "cents"),
    [("24.50", 2450), (24.5, 2450), (3, 300), ("0.005", 1), ("  7 ", 700), ("1e3", 100000)],
)
def test_amounts_become_cents(given: Any, cents: int) -> None:
    """Numbers and decimal strings are read exactly (half a cent rounds up)."""
    assert amount_cents(given) == cents


@pytest.mark.parametrize("bad", ["lots", "", "-1", -1, True, None, [1], "NaN", "inf"])
def test_bad_amounts_are_refused_naming_the_value(bad: Any) -> None:
    """Anything but a number of zero or more is one InputError that names the value."""
    with pytest.raises(InputError, match="expected a number of zero or more"):
        amount_cents(bad)


@pytest.mark.parametrize(("code", "upper"), [("EUR", "EUR"), ("eur", "EUR"), (" gbp ", "GBP")])
def test_currency_codes_are_iso_4217(code: str, upper: str) -> None:
    """Known codes in any case are accepted and upper-cased."""
    assert check_currency(code) == upper


@pytest.mark.parametrize("bad", ["XYZ", "BTC", "euro", "", 12, None])
def test_unknown_currency_codes_are_refused(bad: Any) -> None:
    """A code ISO 4217 does not know (or no code) is refused naming where it was."""
    with pytest.raises(InputError, match=r"data\.currency"):
        check_currency(bad, where="data.currency")


def test_event_money_reads_purchases_and_refunds_only() -> None:
    """Purchases (amount optional) and refunds (amount required, above 0) carry money in
    their currency or the company's; other events none."""
    assert event_money("purchase", {}, "USD") == Money(0, "USD")
    assert event_money("purchase", {"amount": "31.90", "currency": "eur"}, "USD") == Money(
        3190, "EUR"
    )
    assert event_money("refund", {"amount": 5}, "GBP") == Money(500, "GBP")
    assert event_money("signup", {"amount": "lots"}, "USD") is None
    for data in ({}, {"amount": 0}, {"amount": "0.00"}):
        with pytest.raises(InputError, match="a refund needs the money returned"):
            event_money("refund", data, "USD")


def test_only_the_company_currency_counts_towards_spend() -> None:
    """Money in another currency counts 0 towards total_spent (it is kept apart)."""
    assert Money(3190, "EUR").counts_in("EUR") == 3190
    assert Money(3190, "EUR").counts_in("USD") == 0

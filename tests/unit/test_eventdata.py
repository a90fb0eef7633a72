"""Event data checked at the door: what no database or header can hold is refused with one
line, before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dripper.campaigns.steps import subject_event_fields
from dripper.errors import InputError
from dripper.eventdata import check_at, check_header_fields, parse_event_data
from dripper.money import amount_cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"note": "a\\u0000b"}', "NUL byte"),
        ('{"a\\u0000": 1}', "NUL byte"),
        ('{"items": [{"sku": "\\u0000"}]}', "NUL byte"),
        ('{"\\ud800": 1}', "lone surrogate"),
        ('{"x": "\\udfff"}', "lone surrogate"),
        ('{"amount": NaN}', "NaN is not a number"),
        ('{"amount": Infinity}', "Infinity is not a number"),
        ("[" * 50_000 + "]" * 50_000, "larger than"),
        ("[" * 5_000 + "]" * 5_000, "nested"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper"),
        ("[1, 2]", "expected a JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_hostile_event_data_is_refused_in_one_line(text: str, message: str) -> None:
    """Each value no database can store, or JSON cannot mean, is an InputError."""
    with pytest.raises(InputError) as refused:
        parse_event_data(text)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    str(refused.value).encode("utf-8")  # printable


def test_ordinary_event_data_passes() -> None:
    """Amounts, nested order lines and text with accents are fine."""
    data = parse_event_data('{"amount": "24.50", "items": [{"sku": "é-1", "qty": 2}], "ok": true}')
    assert data["items"][0]["qty"] == 2


@pytest.mark.parametrize("amount", [1e308, "1e308", "12345678901234567890123456789012", 1e16])
def test_amounts_too_large_are_refused_not_crashed(amount: object) -> None:
    """Huge amounts get the same 'too large' as 1e16, never InvalidOperation."""
    with pytest.raises(InputError, match="too large"):
        amount_cents(amount)


def test_event_times_out_of_range_are_refused() -> None:
    """An event in year 9999 could not have a step 14 days later: refused at the door."""
    with pytest.raises(InputError, match="out of range"):
        check_at(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    check_at(datetime(2027, 1, 4, tzinfo=UTC))


def test_subjects_name_the_event_fields_that_reach_a_header() -> None:
    """Fields read by a subject are found; a subject using `event.data` wholesale means all."""
    assert subject_event_fields(
        ["Your {{ event.data.product }}", "{{ event.data['size'] }} bag", "{{ event.type }}"]
    ) == frozenset({"product", "size"})
    assert subject_event_fields(["{{ event.data }}"]) is None
    assert subject_event_fields(["{{ event.data[name] }}"]) is None


def test_a_line_break_in_a_field_a_subject_shows_is_refused() -> None:
    """A product name with a newline would fail every send of that email: refused; the same
    newline in a field no subject shows is data."""
    with pytest.raises(InputError, match="'product' holds a line break"):
        check_header_fields({"product": "Bag\nBcc: x@evil.test"}, frozenset({"product"}))
    with pytest.raises(InputError, match="line break"):
        check_header_fields({"product": "Bag\u2028"}, None)
    check_header_fields({"note": "Leave it\nat the door"}, frozenset({"product"}))

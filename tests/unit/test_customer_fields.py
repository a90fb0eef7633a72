"""The customer fields an event brings (DESIGN 12): checked like a CSV row, merged so that
empty values never overwrite and tags are added; marketing consent only the person undoes
(DESIGN 13)."""

from __future__ import annotations

from typing import Any

import pytest

from dripper.customers.fields import customer_fields, merge_fields, merged_status
from dripper.customers.model import CustomerData, Status
from dripper.errors import InputError

OLD: dict[str, Any] = {
    "first_name": "Ada",
    "last_name": "",
    "timezone": None,
    "locale": "en-GB",
    "tags": ["vip"],
    "attributes": {"city": "London"},
    "status": "subscribed",
}


def test_a_full_object_is_read() -> None:
    """Every key is read; numbers and booleans in attributes become text."""
    data = customer_fields(
        "a@example.com",
        {
            "first_name": " Ada ",
            "last_name": "Lovelace",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "tags": ["espresso", "espresso", ""],
            "attributes": {"city": "London", "orders": 3, "vip": True, "note": ""},
            "marketing": "not_subscribed",
        },
    )
    assert data == CustomerData(
        "a@example.com",
        first_name="Ada",
        last_name="Lovelace",
        timezone="Europe/London",
        locale="en-GB",
        tags=("espresso",),
        attributes={"city": "London", "orders": "3", "vip": "true"},
        marketing=Status.NOT_SUBSCRIBED,
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"nickname": "A"}, "customer: unknown key 'nickname'"),
        (
            {"first_name": "Ada\nBcc: x@evil.test"},
            "customer.first_name: first_name contains a line break",
        ),
        ({"last_name": "Tab\there"}, "customer.last_name: last_name contains a tab"),
        ({"timezone": "Mars/Base"}, "customer.timezone: unknown time zone"),
        ({"locale": "english please"}, "customer.locale: bad locale"),
        ({"marketing": "yes"}, "customer.marketing: 'yes' is not one of"),
        ({"tags": "vip"}, "customer.tags: expected a list"),
        ({"tags": ["a;b"]}, "customer.tags[0]"),
        ({"attributes": {"purchases": "9"}}, "is not an attribute name"),
        ({"first_name": 12}, "customer.first_name: expected text"),
        ("Ada", "customer: expected an object"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(given: Any, message: str) -> None:
    """What a CSV row may not hold, an event's customer may not either: one error naming
    the field."""
    with pytest.raises(InputError) as caught:
        customer_fields("a@example.com", given)
    assert message in str(caught.value)


def test_merging_adds_tags_and_never_blanks() -> None:
    """Given values win, empty ones change nothing, tags are added to those kept."""
    given = CustomerData(
        "a@example.com", first_name="", last_name="Lovelace", tags=("vip", "espresso")
    )
    assert merge_fields(OLD, given) == {"last_name": "Lovelace", "tags": ["vip", "espresso"]}
    assert merge_fields(OLD, CustomerData("a@example.com")) == {}


@pytest.mark.parametrize(
    ("old", "given", "blocked", "new"),
    [
        ("subscribed", None, False, "subscribed"),
        ("subscribed", Status.NOT_SUBSCRIBED, False, "not_subscribed"),
        ("not_subscribed", Status.SUBSCRIBED, False, "subscribed"),
        ("subscribed", Status.UNSUBSCRIBED, False, "unsubscribed"),
        ("unsubscribed", Status.SUBSCRIBED, False, "unsubscribed"),
        ("unsubscribed", Status.NOT_SUBSCRIBED, False, "unsubscribed"),
        ("subscribed", Status.SUBSCRIBED, True, "unsubscribed"),
    ],
)
def test_only_the_person_undoes_an_unsubscribe(
    old: str, given: Status | None, blocked: bool, new: str
) -> None:
    """A source's word changes marketing consent, except back from unsubscribed or
    suppressed: that takes the person's own confirmed signup."""
    assert merged_status(old, given, blocked=blocked) == new


def test_a_time_zone_hint_fills_a_gap_and_never_overwrites() -> None:
    """A shop's guessed time zone (its billing country's) is set only where none is known
    and none is given; a customer's own zone always stays."""
    hint = CustomerData("a@example.com", timezone_hint="Europe/Berlin")
    assert merge_fields(OLD, hint) == {"timezone": "Europe/Berlin"}
    assert merge_fields({**OLD, "timezone": "America/New_York"}, hint) == {}
    given = CustomerData("a@example.com", timezone="Asia/Tokyo", timezone_hint="Europe/Berlin")
    assert merge_fields(OLD, given) == {"timezone": "Asia/Tokyo"}
    with pytest.raises(InputError, match="unknown key 'timezone_hint'"):
        customer_fields("a@example.com", {"timezone_hint": "Europe/Berlin"})
    assert customer_fields(
        "a@example.com", {"timezone_hint": "Mars/Base"}, hints=True
    ) == CustomerData("a@example.com")

"""What comes in is recorded exactly once and completely (DESIGN 12), on both databases:
event ids, customer fields that come with an event, refunds, and currencies that are
never added together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.customers.model import CustomerData, Status
from dripper.errors import InputError
from dripper.services.planning import Planner
from dripper.store import Store
from dripper.store.ingest import NewEvent
from dripper.store.schema import enrollments, events, outbox

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def planner(store: Store) -> Planner:
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    return Planner(config, store, campaigns)


def counts(store: Store) -> tuple[int, int, int]:
    with store.reading() as conn:
        return (
            int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()),
            int(conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one()),
            int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()),
        )


def test_a_repeated_event_id_changes_nothing(store: Store) -> None:
    """The same type and id a second time records nothing: no event, no enrollment, no
    spend, no purchase count; the planner says None."""
    p = planner(store)
    first = p.record_event(
        "ada@example.com", "purchase", at=T0, data={"amount": "24.50"}, now=T0, ext_id="o:1"
    )
    assert first is not None
    assert first.decisions.enroll
    before = counts(store)
    again = p.record_event(
        "ada@example.com", "purchase", at=T0, data={"amount": "24.50"}, now=T0, ext_id="o:1"
    )
    assert again is None
    assert counts(store) == before
    customer = store.get_customer("ada@example.com")
    assert customer is not None
    assert (customer.purchases, customer.total_spent) == (1, Decimal("24.50"))


def test_ids_are_per_type_and_events_without_one_always_count(store: Store) -> None:
    """A refund may share its purchase's id (the key is type and id); events without an id
    are always new."""
    p = planner(store)
    p.record_event("a@example.com", "purchase", at=T0, data={"amount": 10}, now=T0, ext_id="x")
    assert p.record_event(
        "a@example.com", "refund", at=T0, data={"amount": 1}, now=T0, ext_id="x"
    )
    for _ in range(2):
        assert p.record_event("a@example.com", "signup", at=T0, data={}, now=T0)
    assert counts(store)[0] == 4


def test_a_repeated_id_for_another_address_is_still_a_duplicate(store: Store) -> None:
    """The id is the shop's order: named again with another address it is the same order,
    recorded once."""
    p = planner(store)
    p.record_event("a@example.com", "purchase", at=T0, data={}, now=T0, ext_id="o:7")
    assert (
        p.record_event("b@example.com", "purchase", at=T0, data={}, now=T0, ext_id="o:7")
        is None
    )
    assert store.get_customer("b@example.com") is None


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 201, "line\nbreak", "tab\there", "nul\0"],
    ids=["empty", "long", "lf", "tab", "nul"],
)
def test_a_bad_id_is_refused_before_anything_is_written(store: Store, bad: str) -> None:
    """An id must be 1-200 printable characters; anything else is one InputError naming
    the id, and nothing is stored."""
    with pytest.raises(InputError, match="id"):
        planner(store).record_event(
            "a@example.com", "purchase", at=T0, data={}, now=T0, ext_id=bad
        )
    assert counts(store) == (0, 0, 0)


def test_bulk_events_skip_duplicates_stored_and_within_the_batch(store: Store) -> None:
    """`record_events` leaves out ids recorded before and ids met earlier in the same
    load, and says how many."""
    p = planner(store)
    p.record_event("a@example.com", "purchase", at=T0, data={"amount": 5}, now=T0, ext_id="1")
    report = p.record_events(
        [
            NewEvent("a@example.com", "purchase", T0, {"amount": 5}, id="1"),  # stored
            NewEvent("b@example.com", "purchase", T0, {"amount": 7}, id="2"),
            NewEvent("c@example.com", "purchase", T0, {"amount": 9}, id="2"),  # in the load
            NewEvent("b@example.com", "purchase", T0 + timedelta(hours=1), {"amount": 3}),
        ],
        now=T0,
        workers=1,  # in file order: the first of two equal ids is the one recorded
    )
    assert (report.recorded, report.duplicates) == (2, 2)
    b = store.get_customer("b@example.com")
    assert b is not None
    assert (b.purchases, b.total_spent) == (2, Decimal("10"))
    assert store.get_customer("c@example.com") is None


def test_parallel_bulk_workers_record_a_shared_id_once(store: Store) -> None:
    """On PostgreSQL two workers share the customers by address; the same id for two
    addresses (in different workers) is recorded once, and the loser's new customer is not
    left behind."""
    p = planner(store)
    load = [
        NewEvent(f"c{i}@example.com", "purchase", T0, {"amount": 1}, id=f"order-{i % 50}")
        for i in range(400)
    ]
    report = p.record_events(load, now=T0, batch_size=60)
    assert (report.recorded, report.duplicates) == (50, 350)
    with store.reading() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    assert stored == 50
    assert store.count_customers() == 50


def test_customer_fields_are_applied_before_planning(store: Store) -> None:
    """An event's customer fields reach the customer before the plan is made: names,
    locale, time zone; tags are added to those kept, empty values never overwrite."""
    p = planner(store)
    store.add_customer(
        CustomerData("ada@example.com", first_name="Ada", tags=("vip",)), now=T0
    )
    fields = CustomerData(
        "ada@example.com",
        first_name=None,
        last_name="Lovelace",
        locale="en-GB",
        timezone="Europe/London",
        tags=("espresso",),
        attributes={"city": "London"},
    )
    recorded = p.record_event(
        "ada@example.com", "purchase", at=T0, data={}, now=T0, fields=fields
    )
    assert recorded is not None
    c = recorded.customer
    assert (c.first_name, c.last_name, c.locale, c.timezone) == (
        "Ada",
        "Lovelace",
        "en-GB",
        "Europe/London",
    )
    assert c.tags == ("vip", "espresso")
    assert c.attributes["city"] == "London"


def test_marketing_from_a_shop_never_undoes_an_unsubscribe(store: Store) -> None:
    """A shop's `subscribed` cannot re-subscribe an unsubscribed customer; its
    `not_subscribed` lowers a subscribed one; only transactional email reaches them."""
    p = planner(store)
    store.add_customer(CustomerData("gone@example.com"), now=T0)
    store.unsubscribe("gone@example.com", now=T0)
    again = CustomerData("gone@example.com", marketing=Status.SUBSCRIBED)
    recorded = p.record_event("gone@example.com", "purchase", at=T0, data={}, now=T0, fields=again)
    assert recorded is not None
    assert recorded.customer.status is Status.UNSUBSCRIBED
    assert not recorded.decisions.enroll

    no = CustomerData("new@example.com", marketing=Status.NOT_SUBSCRIBED)
    recorded = p.record_event("new@example.com", "purchase", at=T0, data={}, now=T0, fields=no)
    assert recorded is not None
    assert recorded.customer.status is Status.NOT_SUBSCRIBED
    # The welcome sequence's thank-you is transactional: it is planned; nothing else is.
    assert [e.campaign for e in recorded.decisions.enroll] == ["welcome"]


def test_a_refund_lowers_total_spent_and_never_below_zero(store: Store) -> None:
    """A refund takes its amount off total_spent; more than was spent leaves 0 and says
    so; a refund of an order nobody knows says that too. Purchases are not uncounted."""
    p = planner(store)
    p.record_event("a@example.com", "purchase", at=T0, data={"amount": "30"}, now=T0, ext_id="o1")
    recorded = p.record_event(
        "a@example.com", "refund", at=T0, data={"amount": "12.50", "order": "o1"}, now=T0
    )
    assert recorded is not None
    assert not recorded.decisions.warnings
    assert recorded.customer.total_spent == Decimal("17.50")
    assert recorded.customer.purchases == 1
    recorded = p.record_event(
        "a@example.com", "refund", at=T0, data={"amount": "100", "order": "o9"}, now=T0
    )
    assert recorded is not None
    assert recorded.customer.total_spent == Decimal("0")
    said = " ".join(recorded.decisions.warnings)
    assert "no purchase with that id" in said
    assert "total_spent is 0" in said


@pytest.mark.parametrize("amount", [None, 0, "0", -3])
def test_a_refund_without_money_is_refused(store: Store, amount: object) -> None:
    """A refund returns more than nothing; anything else is refused, nothing written."""
    data = {} if amount is None else {"amount": amount}
    with pytest.raises(InputError, match="amount"):
        planner(store).record_event("a@example.com", "refund", at=T0, data=data, now=T0)
    assert counts(store) == (0, 0, 0)


def test_currencies_are_never_added_together(store: Store) -> None:
    """A purchase in another currency counts as a purchase, not as spend in the company's;
    its refund (in the purchase's currency) leaves the company's spend alone."""
    p = planner(store)
    p.record_event("a@example.com", "purchase", at=T0, data={"amount": "10"}, now=T0)
    p.record_event(
        "a@example.com",
        "purchase",
        at=T0 + timedelta(days=1),
        data={"amount": "31.90", "currency": "eur"},
        now=T0,
        ext_id="eu1",
    )
    recorded = p.record_event(
        "a@example.com", "refund", at=T0, data={"amount": "5", "order": "eu1"}, now=T0
    )
    assert recorded is not None
    c = recorded.customer
    assert (c.purchases, c.total_spent) == (2, Decimal("10"))


def test_an_unknown_currency_is_refused(store: Store) -> None:
    """A currency code that is not ISO 4217 is one InputError naming it; nothing stored."""
    with pytest.raises(InputError, match="'BTC' is not an ISO 4217"):
        planner(store).record_event(
            "a@example.com", "purchase", at=T0, data={"amount": 1, "currency": "BTC"}, now=T0
        )
    assert counts(store) == (0, 0, 0)


def test_bulk_events_bring_their_customer_fields_before_planning(store: Store) -> None:
    """`NewEvent(customer=...)` applies the fields before the batch is planned (the
    welcome's condition sees the name), and a duplicate's fields change nothing."""
    p = planner(store)
    named = CustomerData("ada@example.com", first_name="Ada", tags=("shop",))
    report = p.record_events(
        [NewEvent("ada@example.com", "purchase", T0, {"amount": 5}, id="n1", customer=named)],
        now=T0,
    )
    assert (report.recorded, report.enrolled) == (1, 1)
    renamed = CustomerData("ada@example.com", first_name="Eve")
    again = p.record_events(
        [NewEvent("ada@example.com", "purchase", T0, {"amount": 5}, id="n1", customer=renamed)],
        now=T0,
    )
    assert (again.recorded, again.duplicates) == (0, 1)
    ada = store.get_customer("ada@example.com")
    assert ada is not None
    assert (ada.first_name, ada.tags) == ("Ada", ("shop",))

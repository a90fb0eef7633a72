"""Customers and events in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from dripper.customers.model import CustomerData, Status
from dripper.errors import InputError
from dripper.store import Store, SuppressionReason, UpsertCounts
from dripper.store import customers as customer_ops
from dripper.store.schema import customers, events

NOW = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)


def test_upsert_inserts_then_merges(store: Store) -> None:
    """Given fields overwrite, `None` keeps, attributes merge key by key, tags replace."""
    first = CustomerData(
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        timezone="Europe/London",
        locale="en",
        tags=("vip", "beta"),
        attributes={"city": "London", "likes": "espresso"},
    )
    assert store.upsert_customers([first], now=NOW) == UpsertCounts(1, 0, 0)
    counts = store.upsert_customers(
        [
            CustomerData(
                email="ada@example.com",
                first_name="Augusta",
                attributes={"likes": "filter", "company": "Analytical"},
            )
        ],
        now=LATER,
    )
    assert (counts.inserted, counts.updated, counts.suppressed) == (0, 1, 0)
    ada = store.get_customer("ada@example.com")
    assert ada is not None
    assert ada.first_name == "Augusta"
    assert ada.last_name == "Lovelace"
    assert ada.timezone == "Europe/London"
    assert ada.locale == "en"
    assert ada.tags == ("vip", "beta")
    assert dict(ada.attributes) == {
        "city": "London",
        "likes": "filter",
        "company": "Analytical",
    }
    assert ada.status is Status.SUBSCRIBED
    assert ada.created_at == NOW
    store.upsert_customers([CustomerData(email="ada@example.com", tags=("customer",))], now=LATER)
    again = store.get_customer("ada@example.com")
    assert again is not None
    assert again.tags == ("customer",)


def test_new_customers_get_defaults(store: Store) -> None:
    """A row with only an address gets empty names, no tags and no purchases."""
    counts = store.upsert_customers([CustomerData(email="bare@example.com")], now=NOW)
    assert (counts.inserted, counts.updated, counts.suppressed) == (1, 0, 0)
    bare = store.get_customer("bare@example.com")
    assert bare is not None
    assert (bare.first_name, bare.last_name, bare.timezone, bare.locale) == ("", "", None, None)
    assert bare.tags == ()
    assert dict(bare.attributes) == {}
    assert (bare.purchases, bare.total_spent) == (0, Decimal("0"))
    assert bare.first_purchase_at is None
    assert store.get_customer("nobody@example.com") is None


def test_a_suppressed_address_is_imported_unsubscribed(store: Store) -> None:
    """An address on the suppression list is stored unsubscribed and counted as such."""
    assert store.suppress("bounced@example.com", reason=SuppressionReason.BOUNCED, now=NOW) is False
    counts = store.upsert_customers(
        [CustomerData(email="bounced@example.com"), CustomerData(email="fine@example.com")],
        now=LATER,
    )
    assert (counts.inserted, counts.updated, counts.suppressed) == (2, 0, 1)
    bounced = store.get_customer("bounced@example.com")
    assert bounced is not None
    assert bounced.status is Status.UNSUBSCRIBED
    assert bounced.unsubscribed_at == NOW  # when the address was suppressed
    fine = store.get_customer("fine@example.com")
    assert fine is not None
    assert fine.status is Status.SUBSCRIBED


def test_an_unsubscribed_customer_stays_unsubscribed(store: Store) -> None:
    """Re-importing never resubscribes: neither after `unsubscribe` nor for a customer
    marked unsubscribed without a suppression row."""
    store.upsert_customers(
        [CustomerData(email="grace@example.com"), CustomerData(email="edsger@example.com")],
        now=NOW,
    )
    assert store.unsubscribe("grace@example.com", now=NOW)
    with store.transaction() as conn:
        conn.execute(
            sa.update(customers)
            .where(customers.c.email == "edsger@example.com")
            .values(status="unsubscribed", unsubscribed_at=NOW)
        )
    counts = store.upsert_customers(
        [
            CustomerData(email="grace@example.com", first_name="Grace"),
            CustomerData(email="edsger@example.com", first_name="Edsger"),
        ],
        now=LATER,
    )
    assert (counts.inserted, counts.updated, counts.suppressed) == (0, 2, 2)
    for email, name in (("grace@example.com", "Grace"), ("edsger@example.com", "Edsger")):
        customer = store.get_customer(email)
        assert customer is not None
        assert customer.status is Status.UNSUBSCRIBED
        assert customer.unsubscribed_at == NOW
        assert customer.first_name == name


def test_a_batch_across_chunk_boundaries(store: Store) -> None:
    """2,500 rows (1,000 per chunk) over 1,500 existing ones: every row lands once, and
    suppressed addresses in different chunks are all caught."""
    emails = [f"c{n:05d}@example.com" for n in range(2500)]
    store.upsert_customers(
        [CustomerData(email=e, first_name="Old") for e in emails[:1500]], now=NOW
    )
    for n in (999, 1000, 1499, 2001):
        store.suppress(emails[n], reason=SuppressionReason.MANUAL, now=NOW)
    counts = store.upsert_customers(
        [CustomerData(email=e, attributes={"n": str(i)}) for i, e in enumerate(emails)], now=LATER
    )
    assert (counts.inserted, counts.updated, counts.suppressed) == (1000, 1500, 4)
    assert store.count_customers() == 2500
    seen = list(store.iter_customers(batch_size=700))
    assert [c.email for c in seen] == emails  # inserted in order: ids follow the list
    assert [c.id for c in seen] == sorted(c.id for c in seen)
    assert {c.first_name for c in seen[:1500]} == {"Old"}
    assert {c.first_name for c in seen[1500:]} == {""}
    assert all(c.attributes["n"] == str(i) for i, c in enumerate(seen))
    unsubscribed = [i for i, c in enumerate(seen) if c.status is Status.UNSUBSCRIBED]
    assert unsubscribed == [999, 1000, 1499, 2001]


def test_a_customer_inserted_meanwhile_is_merged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row another process inserts between the import's SELECT and INSERT is merged into,
    not a unique-constraint failure, and every count stays exact."""
    store.upsert_customers(
        [CustomerData(email="race@example.com", first_name="Theirs", attributes={"a": "1"})],
        now=NOW,
    )
    store.suppress("race@example.com", reason=SuppressionReason.MANUAL, now=NOW)
    real = customer_ops._existing
    calls: list[list[str]] = []

    def blind_first_time(conn: sa.Connection, emails: list[str]) -> Any:
        calls.append(emails)
        return {} if len(calls) == 1 else real(conn, emails)

    monkeypatch.setattr(customer_ops, "_existing", blind_first_time)
    counts = store.upsert_customers(
        [
            CustomerData(email="race@example.com", last_name="Ours", attributes={"b": "2"}),
            CustomerData(email="fresh@example.com", first_name="Fresh"),
        ],
        now=LATER,
    )
    assert len(calls) == 2
    assert counts == UpsertCounts(inserted=1, updated=1, suppressed=1)
    race = store.get_customer("race@example.com")
    assert race is not None
    assert (race.first_name, race.last_name) == ("Theirs", "Ours")
    assert dict(race.attributes) == {"a": "1", "b": "2"}
    assert race.status is Status.UNSUBSCRIBED
    fresh = store.get_customer("fresh@example.com")
    assert fresh is not None
    assert (fresh.first_name, fresh.status) == ("Fresh", Status.SUBSCRIBED)


def test_iter_customers_on_an_empty_store(store: Store) -> None:
    """No customers: the iterator ends at once."""
    assert list(store.iter_customers()) == []
    assert store.count_customers() == 0


def test_add_customer_returns_the_stored_customer(store: Store) -> None:
    """`add_customer` inserts or updates one customer and returns what is stored."""
    added = store.add_customer(
        CustomerData(email="new@example.com", first_name="New", tags=("x",)), now=NOW
    )
    assert (added.email, added.first_name, added.tags) == ("new@example.com", "New", ("x",))
    updated = store.add_customer(CustomerData(email="new@example.com", last_name="Buyer"), now=NOW)
    assert (updated.id, updated.first_name, updated.last_name) == (added.id, "New", "Buyer")


def test_purchases_update_the_derived_fields(store: Store) -> None:
    """Each purchase counts once and adds its amount (number or decimal string); the first
    and last purchase times are the earliest and latest `at`, whatever the order."""
    jan = [datetime(2027, 1, d, 9, 0, tzinfo=UTC) for d in range(1, 10)]
    customer, event = store.record_event(
        "buyer@example.com", "purchase", at=jan[3], data={"amount": 24.5}, now=NOW
    )
    assert customer.status is Status.SUBSCRIBED
    assert (customer.purchases, customer.total_spent) == (1, Decimal("24.50"))
    assert event.customer_id == customer.id
    assert (event.type, event.at, event.recorded_at) == ("purchase", jan[3], NOW)
    store.record_event(
        "buyer@example.com", "purchase", at=jan[1], data={"amount": "10.25"}, now=NOW
    )
    store.record_event("buyer@example.com", "purchase", at=jan[8], data={"amount": 3}, now=NOW)
    store.record_event("buyer@example.com", "purchase", at=jan[5], data={}, now=NOW)
    customer, _ = store.record_event(
        "buyer@example.com", "signup", at=jan[0], data={"source": "web"}, now=NOW
    )
    assert customer.purchases == 4
    assert customer.total_spent == Decimal("37.75")
    assert customer.first_purchase_at == jan[1]
    assert customer.last_purchase_at == jan[8]
    history = store.events_for(customer.id)
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert [e.type for e in history] == ["signup", "purchase", "purchase", "purchase", "purchase"]
    assert dict(history[0].data) == {"source": "web"}


def test_an_event_for_a_suppressed_address_creates_it_unsubscribed(store: Store) -> None:
    """A purchase from a suppressed (here: forgotten) address is recorded, never subscribed."""
    store.record_event("gone@example.com", "purchase", at=NOW, data={}, now=NOW)
    assert store.forget("gone@example.com", now=NOW)
    customer, _ = store.record_event("gone@example.com", "purchase", at=LATER, data={}, now=LATER)
    assert customer.status is Status.UNSUBSCRIBED
    assert customer.purchases == 1


@pytest.mark.parametrize("amount", ["lots", "", "NaN", "-5", -1, True, None, [12], {"v": 1}])
def test_a_bad_amount_is_an_input_error_and_writes_nothing(store: Store, amount: Any) -> None:
    """A purchase amount that is not a number of zero or more is refused, naming the value,
    before anything is written."""
    with pytest.raises(InputError, match="purchase amount") as caught:
        store.record_event("x@example.com", "purchase", at=NOW, data={"amount": amount}, now=NOW)
    assert repr(amount) in str(caught.value)
    assert store.get_customer("x@example.com") is None
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0


def test_event_data_may_hold_decimals_and_times(store: Store) -> None:
    """Python callers may put a Decimal amount or a datetime in event data: stored as a
    decimal string and ISO text, and the amount still counts."""
    customer, event = store.record_event(
        "py@example.com",
        "purchase",
        at=NOW,
        data={"amount": Decimal("19.99"), "shipped": NOW, "items": [1, 2]},
        now=NOW,
    )
    assert customer.total_spent == Decimal("19.99")
    (stored,) = store.events_for(customer.id)
    assert dict(stored.data) == {
        "amount": "19.99",
        "shipped": "2027-01-04T15:00:00+00:00",
        "items": [1, 2],
    }
    assert stored.id == event.id


def test_amounts_round_to_cents(store: Store) -> None:
    """Amounts are kept in whole cents, half a cent rounding up."""
    store.record_event("r@example.com", "purchase", at=NOW, data={"amount": "0.005"}, now=NOW)
    customer, _ = store.record_event(
        "r@example.com", "purchase", at=NOW, data={"amount": 0.1 + 0.2}, now=NOW
    )
    assert customer.total_spent == Decimal("0.31")


def test_times_round_trip_as_aware_utc(store: Store) -> None:
    """A time in any zone comes back as the same instant in UTC, to the microsecond; the
    database holds it as UTC; a naive time is refused."""
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2027, 3, 1, 10, 30, 15, 123456, tzinfo=plus_two)
    _, event = store.record_event("t@example.com", "visit", at=at, data={}, now=NOW)
    assert event.at == at
    assert event.at.tzinfo is UTC
    assert event.at.hour == 8
    (stored,) = store.events_for(event.customer_id)
    assert stored.at == at
    assert stored.at.tzinfo is UTC
    with store.reading() as conn:
        if store.dialect == "sqlite":
            raw = conn.exec_driver_sql("SELECT at FROM events").scalar()
            assert raw == "2027-03-01 08:30:15.123456"
        else:
            raw = conn.exec_driver_sql("SELECT at AT TIME ZONE 'UTC' FROM events").scalar()
            assert raw == datetime(2027, 3, 1, 8, 30, 15, 123456)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.record_event("t@example.com", "visit", at=datetime(2027, 3, 1), data={}, now=NOW)


def test_a_repeat_from_an_earlier_batch_merges_like_one_row(store: Store) -> None:
    """In one transaction, a batch row marked `again` (written by an earlier batch of the
    same import) unites tags with what that batch wrote and is not counted again; `again`
    for a row this import did not write (a hash that matched another address) is ignored."""
    store.upsert_customers(
        [
            CustomerData(email="old@example.com", tags=("stored",)),
            CustomerData(email="other@example.com", tags=("stored",)),
        ],
        now=NOW,
    )
    store.unsubscribe("old@example.com", now=NOW)
    with store.transaction() as conn:
        first = customer_ops.upsert_customers(
            conn,
            [
                CustomerData(email="new@example.com", first_name="N", tags=("a",)),
                CustomerData(email="old@example.com", tags=("a",), attributes={"x": "1"}),
            ],
            now=LATER,
        )
        second = customer_ops.upsert_customers(
            conn,
            [
                CustomerData(email="new@example.com", tags=("b", "a")),
                CustomerData(email="old@example.com", tags=("b",), attributes={"y": "2"}),
                CustomerData(email="other@example.com", tags=("b",)),
            ],
            now=LATER,
            again={"new@example.com": True, "old@example.com": True, "other@example.com": True},
        )
    assert first == UpsertCounts(inserted=1, updated=1, suppressed=1)
    assert second == UpsertCounts(inserted=0, updated=1, suppressed=0)
    new, old, other = (
        store.get_customer(f"{name}@example.com") for name in ("new", "old", "other")
    )
    assert new is not None
    assert old is not None
    assert other is not None
    assert (new.first_name, new.tags) == ("N", ("a", "b"))
    assert (old.tags, dict(old.attributes), old.status) == (
        ("a", "b"),
        {"x": "1", "y": "2"},
        Status.UNSUBSCRIBED,
    )
    assert other.tags == ("b",)

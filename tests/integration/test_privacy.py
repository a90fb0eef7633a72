"""Unsubscribes, suppressions, forgetting and the outbox's send-once rule, on both
databases. Enrollments, outbox rows and tracking are written with plain SQL here: the
code that plans and sends them comes later."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from dripper.customers.addresses import address_hash
from dripper.customers.model import CustomerData, Status
from dripper.store import Store, SuppressionReason
from dripper.store.schema import delivery_attempts, enrollments, outbox, tracking_events

NOW = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def enroll(store: Store, customer_id: int, campaign: str, occurrence: str = "once") -> int:
    with store.transaction() as conn:
        return int(
            conn.execute(
                sa.insert(enrollments)
                .values(
                    customer_id=customer_id,
                    campaign=campaign,
                    occurrence=occurrence,
                    enrolled_at=NOW,
                    status="active",
                )
                .returning(enrollments.c.id)
            ).scalar_one()
        )


def plan(
    store: Store,
    enrollment_id: int,
    customer_id: int,
    campaign: str,
    step: str,
    *,
    status: str = "planned",
    occurrence: str = "once",
    **extra: Any,
) -> int:
    values = {
        "enrollment_id": enrollment_id,
        "customer_id": customer_id,
        "campaign": campaign,
        "occurrence": occurrence,
        "step": step,
        "due_at": NOW,
        "status": status,
        "next_attempt_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }
    with store.transaction() as conn:
        inserted = conn.execute(sa.insert(outbox).values(values).returning(outbox.c.id))
        return int(inserted.scalar_one())


def customer_id(store: Store, email: str) -> int:
    customer = store.get_customer(email)
    assert customer is not None
    return customer.id


def test_unsubscribe_cancels_planned_sends(store: Store) -> None:
    """Unsubscribing marks the customer, suppresses the address, cancels every planned send
    and active enrollment, and leaves sends that already happened alone."""
    store.upsert_customers(
        [CustomerData(email="ann@example.com"), CustomerData(email="bob@example.com")], now=NOW
    )
    ann, bob = customer_id(store, "ann@example.com"), customer_id(store, "bob@example.com")
    welcome = enroll(store, ann, "welcome")
    planned = plan(store, welcome, ann, "welcome", "second-sale")
    sent = plan(store, welcome, ann, "welcome", "thank-you", status="sent", sent_at=NOW)
    bobs = plan(store, enroll(store, bob, "welcome"), bob, "welcome", "second-sale")

    assert store.unsubscribe("ann@example.com", now=LATER) is True
    customer = store.get_customer("ann@example.com")
    assert customer is not None
    assert customer.status is Status.UNSUBSCRIBED
    assert customer.unsubscribed_at == LATER
    suppression = store.suppression_for("ann@example.com")
    assert suppression is not None
    assert suppression.reason is SuppressionReason.UNSUBSCRIBED
    assert suppression.email == "ann@example.com"
    with store.reading() as conn:
        rows = {
            r.id: (r.status, r.reason)
            for r in conn.execute(sa.select(outbox.c.id, outbox.c.status, outbox.c.reason))
        }
        enrollment = conn.execute(
            sa.select(enrollments.c.status, enrollments.c.ended_at).where(
                enrollments.c.id == welcome
            )
        ).one()
    assert rows == {
        planned: ("cancelled", "unsubscribed"),
        sent: ("sent", None),
        bobs: ("planned", None),
    }
    assert tuple(enrollment) == ("cancelled", LATER)

    # Again: nothing changes, the first time and reason stay.
    assert store.unsubscribe("ann@example.com", now=LATER + timedelta(days=1)) is True
    again = store.get_customer("ann@example.com")
    assert again is not None
    assert again.unsubscribed_at == LATER
    assert store.suppression_for("ann@example.com") == suppression


def test_unsubscribing_an_unknown_address_does_nothing(store: Store) -> None:
    """No such customer: False, and no suppression row appears."""
    assert store.unsubscribe("ghost@example.com", now=NOW) is False
    assert store.suppression_for("ghost@example.com") is None


def test_suppress_keeps_the_first_reason(store: Store) -> None:
    """Suppressing twice keeps the first reason and time; a customer is unsubscribed and
    their planned sends cancelled with the suppression's reason."""
    store.upsert_customers([CustomerData(email="bounce@example.com")], now=NOW)
    cid = customer_id(store, "bounce@example.com")
    row = plan(store, enroll(store, cid, "welcome"), cid, "welcome", "thank-you")
    assert store.suppress("bounce@example.com", reason="bounced", now=NOW) is True
    assert store.suppress("bounce@example.com", reason=SuppressionReason.MANUAL, now=LATER)
    suppression = store.suppression_for("bounce@example.com")
    assert suppression is not None
    assert (suppression.reason, suppression.created_at) == (SuppressionReason.BOUNCED, NOW)
    customer = store.get_customer("bounce@example.com")
    assert customer is not None
    assert customer.status is Status.UNSUBSCRIBED
    with store.reading() as conn:
        reason = conn.execute(sa.select(outbox.c.reason).where(outbox.c.id == row)).scalar()
    assert reason == "suppressed: bounced"
    with pytest.raises(ValueError, match="'typo'"):
        store.suppress("x@example.com", reason="typo", now=NOW)


def test_suppressed_hashes_in_batches(store: Store) -> None:
    """Looking up more hashes than one batch finds exactly the suppressed ones."""
    suppressed = [f"s{n}@example.com" for n in range(0, 2400, 400)]
    for email in suppressed:
        store.suppress(email, reason=SuppressionReason.COMPLAINED, now=NOW)
    asked = [address_hash(f"s{n}@example.com") for n in range(2500)]
    assert store.suppressed_hashes(iter(asked)) == {address_hash(e) for e in suppressed}
    assert store.suppressed_hashes([]) == set()


def all_text(store: Store) -> list[tuple[str, str]]:
    """Every value in every table of the database, as text, with its table."""
    found: list[tuple[str, str]] = []
    with store.reading() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                for value in row:
                    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                    found.append((table, text))
    return found


@pytest.mark.parametrize("unsubscribed_first", [False, True])
def test_forget_leaves_only_the_hash(store: Store, unsubscribed_first: bool) -> None:
    """Forgetting deletes the customer and every row about them; no plain copy of the
    address remains in any column of any table; the hash stays suppressed (with its
    original reason, if it had one) and other customers are untouched."""
    address = "ada@example.com"
    store.upsert_customers(
        [
            CustomerData(email=address, first_name="Ada", attributes={"alt": address}),
            CustomerData(email="bob@example.com", first_name="Bob"),
        ],
        now=NOW,
    )
    store.record_event(address, "purchase", at=NOW, data={"amount": 5, "by": address}, now=NOW)
    store.record_event("bob@example.com", "purchase", at=NOW, data={"amount": 7}, now=NOW)
    ada, bob = customer_id(store, address), customer_id(store, "bob@example.com")
    sent = plan(
        store,
        enroll(store, ada, "welcome"),
        ada,
        "welcome",
        "thank-you",
        status="sent",
        message_id=f"m1.{address}",
        reason=f"to {address}",
    )
    bobs = plan(store, enroll(store, bob, "welcome"), bob, "welcome", "thank-you", status="sent")
    with store.transaction() as conn:
        conn.execute(
            sa.insert(delivery_attempts),
            [
                {
                    "outbox_id": sent,
                    "started_at": NOW,
                    "outcome": "sent",
                    "smtp_reply": f"250 OK queued for <{address}>",
                },
                {"outbox_id": bobs, "started_at": NOW, "outcome": "sent", "smtp_reply": "250"},
            ],
        )
        for row in (
            {"outbox_id": sent, "url": f"https://shop.test/?e={address}"},
            {"customer_id": ada, "kind": "reply", "data": {"from": address}},
            {"outbox_id": bobs, "customer_id": bob, "kind": "open", "machine": True},
        ):
            conn.execute(
                sa.insert(tracking_events).values(
                    {"kind": "click", "at": NOW, "machine": False, **row}
                )
            )
    if unsubscribed_first:
        store.unsubscribe(address, now=NOW)
    assert any(address in text for _, text in all_text(store))  # the scan can see it

    assert store.forget(address, now=LATER) is True

    leaks = [table for table, text in all_text(store) if address in text.lower()]
    assert leaks == []
    assert store.get_customer(address) is None
    suppression = store.suppression_for(address)
    assert suppression is not None
    assert suppression.email is None
    expected = SuppressionReason.UNSUBSCRIBED if unsubscribed_first else SuppressionReason.FORGOTTEN
    assert suppression.reason is expected
    assert store.suppressed_hashes([address_hash(address)]) == {address_hash(address)}
    with store.reading() as conn:
        for table in (outbox, enrollments, delivery_attempts, tracking_events):
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
            assert count == 1, table.name  # Bob's row only
    assert len(store.events_for(bob)) == 1
    assert store.forget(address, now=LATER) is False  # nothing left to erase

    # Imported again later: stored, but never subscribed.
    counts = store.upsert_customers([CustomerData(email=address)], now=LATER)
    assert counts.suppressed == 1
    back = store.get_customer(address)
    assert back is not None
    assert back.status is Status.UNSUBSCRIBED


def test_forget_clears_a_suppressed_non_customer(store: Store) -> None:
    """An address that is only on the suppression list loses its plain copy, keeps its hash."""
    store.suppress("list@example.com", reason=SuppressionReason.COMPLAINED, now=NOW)
    assert store.forget("list@example.com", now=LATER) is True
    suppression = store.suppression_for("list@example.com")
    assert suppression is not None
    assert (suppression.email, suppression.reason) == (None, SuppressionReason.COMPLAINED)
    assert store.forget("never@example.com", now=LATER) is False
    assert store.suppression_for("never@example.com") is None


def test_a_step_is_planned_at_most_once(store: Store) -> None:
    """The outbox refuses a second row for the same customer, campaign, occurrence and
    step; another occurrence or step is a different send."""
    store.upsert_customers([CustomerData(email="once@example.com")], now=NOW)
    cid = customer_id(store, "once@example.com")
    first = enroll(store, cid, "newsletter", "2027-01-05")
    second = enroll(store, cid, "newsletter", "2027-02-16")
    plan(store, first, cid, "newsletter", "issue", occurrence="2027-01-05")
    plan(store, second, cid, "newsletter", "issue", occurrence="2027-02-16")
    plan(store, first, cid, "newsletter", "reminder", occurrence="2027-01-05")
    with pytest.raises(sa.exc.IntegrityError):
        plan(store, first, cid, "newsletter", "issue", occurrence="2027-01-05")
    with pytest.raises(sa.exc.IntegrityError):
        enroll(store, cid, "newsletter", "2027-01-05")
    timeline = store.timeline("once@example.com")
    assert timeline is not None
    assert [(o.occurrence, o.step) for o in timeline.outbox] == [
        ("2027-01-05", "issue"),
        ("2027-02-16", "issue"),
        ("2027-01-05", "reminder"),
    ]
    assert [e.occurrence for e in timeline.enrollments] == ["2027-01-05", "2027-02-16"]


def test_message_ids_are_unique(store: Store) -> None:
    """Two sends can never share a Message-ID; many can have none yet."""
    store.upsert_customers([CustomerData(email="m@example.com")], now=NOW)
    cid = customer_id(store, "m@example.com")
    enrollment = enroll(store, cid, "welcome")
    plan(store, enrollment, cid, "welcome", "a")
    plan(store, enrollment, cid, "welcome", "b")
    plan(store, enrollment, cid, "welcome", "c", message_id="x@dripper")
    with pytest.raises(sa.exc.IntegrityError):
        plan(store, enrollment, cid, "welcome", "d", message_id="x@dripper")


def test_timeline_gathers_everything_about_a_customer(store: Store) -> None:
    """The timeline holds the customer, their events, enrollments, sends, tracking (also
    when recorded against a send only) and suppression, oldest first; None for an unknown
    address."""
    store.record_event("t@example.com", "purchase", at=LATER, data={"amount": 3}, now=LATER)
    store.record_event("t@example.com", "signup", at=NOW, data={}, now=LATER)
    cid = customer_id(store, "t@example.com")
    row = plan(store, enroll(store, cid, "welcome"), cid, "welcome", "thank-you", status="sent")
    with store.transaction() as conn:
        conn.execute(
            sa.insert(tracking_events).values(
                outbox_id=row, customer_id=cid, kind="open", at=LATER, machine=True
            )
        )
        conn.execute(
            sa.insert(tracking_events).values(
                outbox_id=row, kind="click", at=LATER + timedelta(minutes=1), machine=False
            )
        )
    store.unsubscribe("t@example.com", now=LATER)
    timeline = store.timeline("t@example.com")
    assert timeline is not None
    assert timeline.customer.purchases == 1
    assert [e.type for e in timeline.events] == ["signup", "purchase"]
    assert [e.campaign for e in timeline.enrollments] == ["welcome"]
    assert [(o.step, o.status.value) for o in timeline.outbox] == [("thank-you", "sent")]
    assert [(t.kind.value, t.machine) for t in timeline.tracking] == [
        ("open", True),
        ("click", False),
    ]
    assert timeline.suppression is not None
    assert store.timeline("nobody@example.com") is None

"""Rows to records: the one place that knows how columns map onto the value classes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from dripper.customers.model import Customer, Status
from dripper.store.records import (
    EnrollmentRecord,
    EnrollmentStatus,
    EventRecord,
    OutboxRecord,
    SendStatus,
    SuppressionReason,
    SuppressionRecord,
    TrackingKind,
    TrackingRecord,
)

Row = RowMapping  # what `Result.mappings()` yields


def cents_to_decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def customer(row: Row | Mapping[str, Any]) -> Customer:
    return Customer(
        id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        timezone=row["timezone"],
        locale=row["locale"],
        tags=tuple(row["tags"]),
        attributes=dict(row["attributes"]),
        status=Status(row["status"]),
        created_at=row["created_at"],
        purchases=row["purchases"],
        total_spent=cents_to_decimal(row["total_spent_cents"]),
        first_purchase_at=row["first_purchase_at"],
        last_purchase_at=row["last_purchase_at"],
        unsubscribed_at=row["unsubscribed_at"],
        referral_code=row.get("referral_code"),
        spend_percentile=row.get("spend_percentile"),
        spend_rank=row.get("spend_rank"),
        topics=None if row.get("topics") is None else tuple(row["topics"]),
        p_alive=row.get("p_alive"),
        expected_purchases_90d=row.get("expected_purchases_90d"),
        expected_purchases_365d=row.get("expected_purchases_365d"),
        predicted_clv_365d=row.get("predicted_clv_365d"),
    )


def event(row: Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        type=row["type"],
        at=row["at"],
        data=dict(row["data"]),
        recorded_at=row["recorded_at"],
        ext_id=row.get("ext_id"),
    )


def enrollment(row: Row) -> EnrollmentRecord:
    return EnrollmentRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        campaign=row["campaign"],
        occurrence=row["occurrence"],
        enrolled_at=row["enrolled_at"],
        event_id=row["event_id"],
        status=EnrollmentStatus(row["status"]),
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        converted_at=row["converted_at"],
        converted_event_id=row["converted_event_id"],
        attributed_step=row["attributed_step"],
    )


def outbox(row: Row) -> OutboxRecord:
    return OutboxRecord(
        id=row["id"],
        enrollment_id=row["enrollment_id"],
        customer_id=row["customer_id"],
        campaign=row["campaign"],
        occurrence=row["occurrence"],
        step=row["step"],
        due_at=row["due_at"],
        status=SendStatus(row["status"]),
        variant=row["variant"],
        message_id=row["message_id"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        reason=row["reason"],
        sent_at=row["sent_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def tracking(row: Row) -> TrackingRecord:
    data = row["data"]
    return TrackingRecord(
        id=row["id"],
        outbox_id=row["outbox_id"],
        customer_id=row["customer_id"],
        kind=TrackingKind(row["kind"]),
        at=row["at"],
        machine=bool(row["machine"]),
        url=row["url"],
        user_agent=row["user_agent"],
        data=None if data is None else dict(data),
    )


def suppression(row: Row) -> SuppressionRecord:
    return SuppressionRecord(
        address_hash=row["address_hash"],
        email=row["email"],
        reason=SuppressionReason(row["reason"]),
        created_at=row["created_at"],
    )

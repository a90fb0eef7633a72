"""Unsubscribes, suppressions and forgetting: the rules that make "stop" final.

A suppressed address is never emailed again and no import can resubscribe it; a
forgotten customer leaves nothing behind but the hash of their address.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.addresses import address_hash
from dripper.customers.model import Status
from dripper.store import consent, rows, signups
from dripper.store.customers import customer_id
from dripper.store.engine import dialect_of
from dripper.store.records import (
    ConsentChange,
    EnrollmentStatus,
    SendStatus,
    SuppressionReason,
    SuppressionRecord,
)
from dripper.store.schema import (
    consent_records,
    customer_notes,
    customers,
    delivery_attempts,
    enrollments,
    events,
    outbox,
    suppressions,
    tasks,
    tracking_events,
)
from dripper.store.sql import chunks, insert_ignoring


def suppress(
    conn: Connection,
    email: str,
    *,
    reason: SuppressionReason,
    now: datetime,
    source: str = "",
) -> bool:
    """Put the address on the suppression list (the first reason given stays) and, if it is
    a customer's, unsubscribe them and cancel what was planned for them (the change kept
    in the consent record, with `source`: how it came). True if the customer exists."""
    dialect = dialect_of(conn)
    conn.execute(
        insert_ignoring(dialect, suppressions, ["address_hash"]).values(
            address_hash=address_hash(email),
            email=email,
            reason=reason.value,
            created_at=now,
        )
    )
    cid = customer_id(conn, email)
    if cid is None:
        return False
    why = "unsubscribed" if reason is SuppressionReason.UNSUBSCRIBED else f"suppressed: {reason}"
    changed = conn.execute(
        sa.update(customers)
        .where(customers.c.id == cid, customers.c.status != Status.UNSUBSCRIBED.value)
        .values(status=Status.UNSUBSCRIBED.value, unsubscribed_at=now, updated_at=now),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    if changed:
        change = ConsentChange(now, reason.value, Status.UNSUBSCRIBED.value, source)
        consent.record(conn, cid, change)
    # Only what has not started: a row being sent right now finishes, and the send-time
    # check stops anything that slips through. A task or a webhook step is not an email
    # (DESIGN 16): only a complaint ends it, and its enrollment stays open for it.
    o = outbox.c
    planned = sa.and_(o.customer_id == cid, o.status == SendStatus.PLANNED.value)
    spare = reason is not SuppressionReason.COMPLAINED
    conn.execute(
        sa.update(outbox)
        .where(planned, o.kind == "email" if spare else sa.true())
        .values(status=SendStatus.CANCELLED.value, reason=why, updated_at=now)
    )
    e = enrollments.c
    ending = sa.update(enrollments).where(
        e.customer_id == cid, e.status == EnrollmentStatus.ACTIVE.value
    )
    if spare:
        kept = sa.select(o.enrollment_id).where(planned, o.kind != "email")
        ending = ending.where(e.id.not_in(kept))
    conn.execute(
        ending.values(status=EnrollmentStatus.CANCELLED.value, ended_at=now, end_reason=why)
    )
    if not spare:
        from dripper.store import tasks as open_tasks

        open_tasks.cancel_for(conn, cid, reason=why, now=now)
    return True


def unsubscribe(
    conn: Connection,
    email: str,
    *,
    reason: SuppressionReason,
    now: datetime,
    source: str = "",
) -> bool:
    """Unsubscribe a customer (idempotent); False, and nothing written, if there is none."""
    if customer_id(conn, email) is None:
        return False
    return suppress(conn, email, reason=reason, now=now, source=source)


def message_ids_of(conn: Connection, email: str) -> list[str]:
    """The Message-IDs given to this address's emails (its confirmations included)."""
    confirmations = list(signups.message_ids_of(conn, email))
    cid = customer_id(conn, email)
    if cid is None:
        return confirmations
    o = outbox.c
    query = sa.select(o.message_id).where(o.customer_id == cid, o.message_id.is_not(None))
    return [str(m) for m in conn.execute(query).scalars()] + confirmations


def forget(conn: Connection, email: str, *, now: datetime) -> bool:
    """Erase the customer and every row about them; keep the address hash suppressed and no
    plain copy of the address anywhere. False if there was nothing to erase."""
    dialect = dialect_of(conn)
    digest = address_hash(email)
    cleared = conn.execute(
        sa.update(suppressions)
        .where(suppressions.c.address_hash == digest, suppressions.c.email.is_not(None))
        .values(email=None)
    ).rowcount
    cid = customer_id(conn, email)
    from dripper.store import inbound

    inbound.forget(conn, cid, email)  # what came back from or about the address
    cleared += signups.forget(conn, email)  # what the address typed into a signup form
    if cid is None:
        return cleared > 0
    # Explicit deletes, children first, rather than trusting ON DELETE CASCADE alone: a
    # SQLite connection opened without `PRAGMA foreign_keys=ON` would skip the cascades.
    theirs = sa.select(outbox.c.id).where(outbox.c.customer_id == cid).scalar_subquery()
    t = tracking_events.c
    conn.execute(
        sa.delete(tracking_events).where(
            sa.or_(
                # Tied to no email (a referral visit): by the customer's partial index.
                sa.and_(t.customer_id == cid, t.outbox_id.is_(None)),
                t.outbox_id.in_(theirs),
            )
        )
    )
    conn.execute(sa.delete(delivery_attempts).where(delivery_attempts.c.outbox_id.in_(theirs)))
    conn.execute(sa.delete(tasks).where(tasks.c.customer_id == cid))
    for table in (outbox, enrollments, events, consent_records, customer_notes):
        conn.execute(sa.delete(table).where(table.c.customer_id == cid))
    conn.execute(sa.delete(customers).where(customers.c.id == cid))
    conn.execute(
        insert_ignoring(dialect, suppressions, ["address_hash"]).values(
            address_hash=digest,
            email=None,
            reason=SuppressionReason.FORGOTTEN.value,
            created_at=now,
        )
    )
    return True


def suppression_for(conn: Connection, email: str) -> SuppressionRecord | None:
    query = sa.select(suppressions).where(suppressions.c.address_hash == address_hash(email))
    row = conn.execute(query).mappings().first()
    return None if row is None else rows.suppression(row)


def suppressed_hashes(conn: Connection, hashes: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for batch in chunks(hashes):
        query = sa.select(suppressions.c.address_hash).where(suppressions.c.address_hash.in_(batch))
        found.update(conn.execute(query).scalars())
    return found

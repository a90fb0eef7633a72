"""What the store knows and keeps of mail that comes back: the lookups the classifier
needs (our Message-IDs, VERP delivery ids, the sender's recent email), each message
recorded once, soft bounces counted, replies waiting to be forwarded, and how far each
polled mailbox has been read.

Soft bounces are counted as DESIGN 12 says: soft-bounced **emails in a row** with no sign of
life in between, however far apart (`soft_bounces_in_a_row`):

- An email counts once, however many notices come back about it (a delay warning every
  few hours, then the expiry): they are told apart by the outbox row the bounce was matched
  to (VERP, Message-ID).
- A sign of life is a person's open, click or one-click answer (`tracking_events`, kind
  open/click/answer, `machine` false: a privacy proxy's prefetch or a link scanner proves
  nothing) on any email of the customer's, or a reply (`inbound_messages` kind `reply`).
  The row counts only emails sent after the customer's last sign of life: a customer who
  opened anything after an email went out was alive after it.
- Only a sign of life breaks the row. An email that brought no bounce is no proof it was
  delivered (bounces come days late; many receivers never send one), so it neither counts
  nor resets.
- A soft bounce matched to no email the store still has (its outbox row gone) counts once
  per UTC day it came back, if after the last sign of life: without an email to tell
  notices apart, a day is the nearest thing to one email (few senders mail a customer more
  than daily), and several notices on one day count once. An email without a send time
  (its outcome lost in a crash, yet it went out) counts by when its bounce came back.

Every function takes an open connection; the listening service owns the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.inbound import DeliveryRef, Inbound, Known
from dripper.engine.inbound_facts import MAX_LOOKUPS
from dripper.inbound.mailbox import MailboxState
from dripper.store.engine import dialect_of
from dripper.store.schema import (
    customers,
    inbound_messages,
    mailbox_state,
    outbox,
    tracking_events,
)
from dripper.store.sql import insert_ignoring

RECENT = timedelta(days=30)  # a reply matched by its sender's address: mailed this recently
_NEWEST = 20  # of a sender's recent emails read, newest first, to find the last one sent
Email = tuple[int, str, str, int]  # an outbox row: id, campaign, step, variant


def message_key(message_id: str | None, raw: bytes) -> str:
    """What makes a message the same message however often it is polled or posted: its
    Message-ID, or (without one) its bytes."""
    if message_id:
        return hashlib.sha256(b"id:" + message_id.strip().lower().encode()).hexdigest()
    return hashlib.sha256(b"raw:" + raw).hexdigest()


def known(conn: Connection, inbound: Inbound, *, domain: str, now: datetime) -> Known:
    """Exactly the three lookups `dripper.engine.inbound.classify` needs, in two statements
    whatever the message: the Message-IDs and VERP ids it names (a few, of our own shape:
    `Inbound.referenced_ids`, `Inbound.delivery_ids`) by the unique index on
    `outbox.message_id`, and the sender's most recent email of the last 30 days. Never a
    prefix or pattern scan: a VERP id is ours only as `<id>@<domain>`, the Message-ID it
    was made from (one sent under an earlier From domain is still found by the returned
    Message-ID). Run it in a read transaction: none of it needs the write lock."""
    o, c = outbox.c, customers.c
    columns = (
        o.message_id, o.customer_id, c.email, o.campaign, o.step, o.sent_at, o.status, o.kind
    )  # fmt: skip
    emails = (
        sa.select(*columns)
        .select_from(outbox.join(customers, c.id == o.customer_id))
        .where(o.message_id.is_not(None))
    )
    # The engine bounds both lists already; bounded again here, as this is what costs.
    ids = list(inbound.referenced_ids()[:MAX_LOOKUPS])
    deliveries = {f"{d}@{domain}": d for d in inbound.delivery_ids()[:MAX_LOOKUPS]}
    by_message_id: dict[str, DeliveryRef] = {}
    by_delivery_id: dict[str, DeliveryRef] = {}
    wanted = sorted({*ids, *deliveries})
    for row in conn.execute(emails.where(o.message_id.in_(wanted))) if wanted else ():
        if row.message_id in ids:
            by_message_id[row.message_id] = _ref(row)
        if row.message_id in deliveries:
            by_delivery_id[deliveries[row.message_id]] = _ref(row)
    by_address: dict[str, DeliveryRef] = {}
    for address in sorted({a.lower() for a in inbound.addresses()[:MAX_LOOKUPS]}):
        # By the customer's address, then their emails (uq_outbox_send_once leads with the
        # customer), newest first. `status` is checked on the rows found: as a condition,
        # it would have SQLite walk ix_outbox_claim through every email ever sent.
        recent = emails.where(c.email == address, o.sent_at >= now - RECENT)
        newest = conn.execute(recent.order_by(o.sent_at.desc()).limit(_NEWEST))
        sent = next(  # an email: a task or a webhook step is nothing to reply to
            (row for row in newest if row.status == "sent" and row.kind == "email"), None
        )
        if sent is not None:
            by_address[address] = _ref(sent)
    return Known(by_message_id, by_delivery_id, by_address)


def email_of(conn: Connection, message_id: str) -> Email | None:
    """The email a message answers, for the stats: its row, campaign, step and variant."""
    o = outbox.c
    row = conn.execute(
        sa.select(o.id, o.campaign, o.step, o.variant).where(o.message_id == message_id)
    ).first()
    return None if row is None else (row.id, row.campaign, row.step, row.variant or 0)


def _ref(row: Any) -> DeliveryRef:
    return DeliveryRef(
        delivery_id=row.message_id.split("@", 1)[0],
        message_id=row.message_id,
        customer_id=row.customer_id,
        email=row.email,
        campaign=row.campaign,
        step=row.step,
    )


@dataclass(frozen=True)
class Recorded:
    """An inbound message as it was recorded."""

    id: int
    kind: str
    address: str | None
    customer_id: int | None
    reason: str | None


def recorded(conn: Connection, key: str) -> Recorded | None:
    m = inbound_messages.c
    row = conn.execute(
        sa.select(m.id, m.kind, m.address, m.customer_id, m.reason).where(m.message_key == key)
    ).first()
    if row is None:
        return None
    return Recorded(row.id, row.kind, row.address, row.customer_id, row.reason)


def record(conn: Connection, values: dict[str, Any]) -> bool:
    """Record a message; False when it was recorded already (polled or posted twice)."""
    dialect = dialect_of(conn)
    stmt = insert_ignoring(dialect, inbound_messages, ("message_key",))
    return bool(
        conn.execute(stmt, values, execution_options={"preserve_rowcount": True}).rowcount
    )


SIGNS_OF_LIFE = ("open", "click", "answer")  # tracking kinds a person leaves (machine false)


def soft_bounces_in_a_row(conn: Connection, address: str, customer_id: int | None) -> int:
    """How many soft-bounced emails to `address` are in a row now: distinct emails, sent
    after the customer's last sign of life (see the module docstring)."""
    alive = last_sign_of_life(conn, customer_id) if customer_id is not None else None
    m, o = inbound_messages.c, outbox.c
    query = (
        sa.select(o.id, o.sent_at, m.received_at)
        .select_from(inbound_messages.outerjoin(outbox, o.id == m.outbox_id))
        .where(m.address == address, m.kind == "bounce_soft")
    )
    if alive is not None:  # a bounce about an email sent after it came back after it too
        query = query.where(m.received_at > alive)
    emails: set[tuple[str, object]] = set()
    for email, sent_at, received_at in conn.execute(query):
        if alive is not None and (sent_at or received_at) <= alive:
            continue  # the customer was alive after this email went out
        emails.add(("email", email) if email is not None else ("day", received_at.date()))
    return len(emails)


def last_sign_of_life(conn: Connection, customer_id: int) -> datetime | None:
    """When the customer last opened, clicked or answered one of our emails (a person, not
    a machine), or wrote a reply; None if never."""
    t, o, m = tracking_events.c, outbox.c, inbound_messages.c
    # Through the customer's emails: tracking_events is indexed by its email, and only its
    # rows without one (referral visits) by customer.
    hits = (
        sa.select(sa.func.max(t.at))
        .select_from(tracking_events.join(outbox, o.id == t.outbox_id))
        .where(o.customer_id == customer_id, t.kind.in_(SIGNS_OF_LIFE), t.machine.is_(False))
    )
    replies = sa.select(sa.func.max(m.received_at)).where(
        m.customer_id == customer_id, m.kind == "reply"
    )
    found = [conn.execute(query).scalar() for query in (hits, replies)]
    return max((at for at in found if at is not None), default=None)


@dataclass(frozen=True)
class Waiting:
    """A reply to forward to a person."""

    id: int
    customer_email: str | None
    subject: str
    text: str
    received_at: datetime


def waiting_replies(conn: Connection, limit: int = 100) -> list[Waiting]:
    m, c = inbound_messages.c, customers.c
    query = (
        sa.select(m.id, c.email, m.subject, m.text, m.received_at)
        .select_from(inbound_messages.outerjoin(customers, c.id == m.customer_id))
        .where(m.notify == "pending")
        .order_by(m.id)
        .limit(limit)
    )
    return [
        Waiting(r.id, r.email, r.subject or "", r.text or "", r.received_at)
        for r in conn.execute(query)
    ]


def mark_notified(conn: Connection, ids: Iterable[int], status: str) -> None:
    wanted = list(ids)
    if wanted:
        conn.execute(
            sa.update(inbound_messages)
            .where(inbound_messages.c.id.in_(wanted))
            .values(notify=status)
        )


def mailbox(conn: Connection, name: str) -> MailboxState | None:
    row = conn.execute(
        sa.select(mailbox_state.c.uidvalidity, mailbox_state.c.last_uid).where(
            mailbox_state.c.mailbox == name
        )
    ).first()
    return None if row is None else MailboxState(int(row.uidvalidity), int(row.last_uid))


def save_mailbox(
    conn: Connection, name: str, state: MailboxState, *, now: datetime
) -> None:
    dialect = dialect_of(conn)
    stmt = insert_ignoring(dialect, mailbox_state, ("mailbox",))
    values = {"uidvalidity": state.uidvalidity, "last_uid": state.last_uid, "checked_at": now}
    conn.execute(stmt, {"mailbox": name, **values})
    conn.execute(
        sa.update(mailbox_state).where(mailbox_state.c.mailbox == name).values(values)
    )


def forget(conn: Connection, customer_id: int | None, email: str) -> None:
    """Erase what came back from or about a forgotten customer."""
    m = inbound_messages.c
    where: list[sa.ColumnElement[bool]] = [m.address == email]
    if customer_id is not None:
        where.append(m.customer_id == customer_id)
    conn.execute(sa.delete(inbound_messages).where(sa.or_(*where)))

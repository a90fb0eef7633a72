"""Pending signups (DESIGN 13), as functions of an open connection: stored at `POST
/subscribe`, their confirmation emails claimed by the daemon under a lease and marked,
found by their key at `/s/<token>`, and confirmed once (the row's status decides, so two
confirmations racing make one customer and one event)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.addresses import address_hash
from dripper.engine.inbound import InboundClass
from dripper.engine.signup import (
    PER_ADDRESS,
    ConfirmationFacts,
    SignupRequest,
    SignupStatus,
)
from dripper.store.engine import dialect_of
from dripper.store.records import ConsentChange, SuppressionReason
from dripper.store.schema import inbound_messages, signups, suppressions


@dataclass(frozen=True)
class Signup:
    """A stored signup."""

    id: int
    key: str
    email: str
    first_name: str
    form: str
    topics: tuple[str, ...] | None
    locale: str | None
    ip: str | None
    user_agent: str | None
    text_hash: str
    created_at: datetime
    expires_at: datetime
    status: SignupStatus
    message_id: str | None
    attempts: int


def add(
    conn: Connection,
    request: SignupRequest,
    *,
    key: str,
    locale: str | None,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    conn.execute(
        sa.insert(signups).values(
            key=key,
            email=request.email,
            first_name=request.first_name,
            form=request.form,
            topics=None if request.topics is None else list(request.topics),
            locale=locale,
            ip=ip,
            user_agent=(user_agent or "")[:500] or None,
            text_hash=request.text_hash,
            created_at=now,
            expires_at=expires_at,
            status=SignupStatus.QUEUED.value,
            next_attempt_at=now,
        )
    )


def count_from(conn: Connection, ip: str, *, since: datetime) -> int:
    """Signups stored from this IP since then (the per-IP limit, across every worker).
    On PostgreSQL the IP is locked for the rest of the transaction first, so signups from
    one address at once count one after the other (READ COMMITTED would let them all see
    the same count); SQLite's write transaction already holds the one write lock."""
    if dialect_of(conn) == "postgresql":  # the schema's own key (as store/spend.py's)
        digest = hashlib.sha256(b"dripper signup ip " + ip.encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key # hashtextextended(current_schema(), 0))"),
            {"key": key},
        )
    t = signups.c
    query = sa.select(sa.func.count()).where(t.ip == ip, t.created_at >= since)
    return int(conn.execute(query).scalar_one())


def claim(conn: Connection, *, now: datetime, lease: timedelta, limit: int) -> list[Signup]:
    """The queued confirmations due, leased to this daemon (another daemon skips them
    until the lease ends; a daemon that died mid-send leaves them to be sent again)."""
    t = signups.c
    due = (
        sa.select(t.id)
        .where(
            t.status == SignupStatus.QUEUED.value,
            t.next_attempt_at <= now,
            sa.or_(t.lease_until.is_(None), t.lease_until < now),
        )
        .order_by(t.next_attempt_at, t.id)
        .limit(limit)
    )
    if dialect_of(conn) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(sa.update(signups).where(t.id.in_(ids)).values(lease_until=now + lease))
    rows = conn.execute(sa.select(signups).where(t.id.in_(ids)).order_by(t.id)).mappings()
    return [_signup(row) for row in rows]


def facts(
    conn: Connection, email: str, expires_at: datetime, *, now: datetime
) -> ConfirmationFacts:
    """What `confirmation_verdict` decides on, for one address."""
    t = signups.c
    day = now - PER_ADDRESS
    to_address = conn.execute(
        sa.select(sa.func.count()).where(t.email == email, t.sent_at >= day)
    ).scalar_one()
    in_day = conn.execute(sa.select(sa.func.count()).where(t.sent_at >= day)).scalar_one()
    return ConfirmationFacts(
        expires_at=expires_at,
        sent_to_address=int(to_address),
        sent_in_day=int(in_day),
        hard_bounced_at=_hard_bounced_at(conn, email),
    )


def _hard_bounced_at(conn: Connection, email: str) -> datetime | None:
    """The last hard bounce of this mailbox: a bounce notice, or a send refused for good
    (which suppressed the address as bounced)."""
    i = inbound_messages.c
    notice = conn.execute(
        sa.select(sa.func.max(i.received_at)).where(
            i.address == email, i.kind == InboundClass.BOUNCE_HARD.value
        )
    ).scalar()
    s = suppressions.c
    refused = conn.execute(
        sa.select(s.created_at).where(
            s.address_hash == address_hash(email), s.reason == SuppressionReason.BOUNCED.value
        )
    ).scalar()
    times = [t for t in (notice, refused) if t is not None]
    return max(times) if times else None


def mark(
    conn: Connection,
    signup_id: int,
    status: SignupStatus,
    *,
    now: datetime,
    reason: str | None = None,
    message_id: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """What became of a claimed confirmation: sent, limited or failed (reason kept), or
    still queued until `retry_at` (a relay that deferred it)."""
    t = signups.c
    values: dict[str, object] = {"status": status.value, "reason": reason, "lease_until": None}
    if message_id is not None:
        values["message_id"] = message_id
    if status is SignupStatus.SENT:
        values["sent_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if status in (SignupStatus.SENT, SignupStatus.FAILED) or retry_at is not None:
        values["attempts"] = t.attempts + 1
    conn.execute(
        sa.update(signups)
        .where(t.id == signup_id, t.status != SignupStatus.CONFIRMED.value)
        .values(**values)
    )


def find(conn: Connection, key: str, *, lock: bool = False) -> Signup | None:
    query = sa.select(signups).where(signups.c.key == key)
    if lock and dialect_of(conn) == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else _signup(row)


def set_confirmed(conn: Connection, signup_id: int, *, now: datetime) -> bool:
    """Mark it confirmed; False when another request did first (nothing more to do)."""
    t = signups.c
    result = conn.execute(
        sa.update(signups)
        .where(t.id == signup_id, t.status != SignupStatus.CONFIRMED.value)
        .values(status=SignupStatus.CONFIRMED.value, confirmed_at=now, lease_until=None),
        execution_options={"preserve_rowcount": True},
    )
    return bool(result.rowcount)


def forget(conn: Connection, email: str) -> int:
    """Erase every signup of this address (`forget`)."""
    result = conn.execute(
        sa.delete(signups).where(signups.c.email == email),
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)


def purge(conn: Connection, *, before: datetime) -> int:
    """Drop signups whose link expired before then, confirmed or not: an address someone
    typed is not kept longer than it takes to confirm it (plus the day the limits look
    back on); a confirmed one's evidence is the consent record."""
    t = signups.c
    result = conn.execute(
        sa.delete(signups).where(t.expires_at < before),
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)


def message_ids_of(conn: Connection, email: str) -> Sequence[str]:
    t = signups.c
    return [m for m in conn.execute(sa.select(t.message_id).where(t.email == email)).scalars() if m]


def _signup(row: sa.RowMapping) -> Signup:
    return Signup(
        id=row["id"],
        key=row["key"],
        email=row["email"],
        first_name=row["first_name"],
        form=row["form"],
        topics=None if row["topics"] is None else tuple(row["topics"]),
        locale=row["locale"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        text_hash=row["text_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        status=SignupStatus(row["status"]),
        message_id=row["message_id"],
        attempts=row["attempts"],
    )


def subscribe(conn: Connection, signup: Signup, change: ConsentChange, *, now: datetime) -> int:
    """The person's own confirmed word (DESIGN 13): the customer made, or brought back
    from unsubscribed, suppressed or forgotten, as `subscribed` with the topics they chose;
    the change kept. Only this undoes an unsubscribe. Returns the customer's id."""
    from dripper.customers.model import CustomerData, Status
    from dripper.store import consent
    from dripper.store.customers import customer_id, upsert_customers
    from dripper.store.schema import customers

    conn.execute(
        sa.delete(suppressions).where(suppressions.c.address_hash == address_hash(signup.email))
    )
    given = CustomerData(
        email=signup.email,
        first_name=signup.first_name or None,
        locale=signup.locale,
    )  # marketing is set below, as the person's word (an import's merge would refuse it)
    c = customers.c
    before = conn.execute(sa.select(c.status, c.topics).where(c.email == signup.email)).first()
    upsert_customers(conn, [given], now=now)
    cid = customer_id(conn, signup.email)
    assert cid is not None
    topics = None if signup.topics is None else list(signup.topics)
    if before is not None and before[0] == Status.SUBSCRIBED.value:
        # Already a reader: a form offering fewer topics adds, never takes away.
        kept = before[1]
        topics = None if kept is None or topics is None else list(dict.fromkeys([*kept, *topics]))
    conn.execute(
        sa.update(customers)
        .where(c.id == cid)
        .values(status=Status.SUBSCRIBED.value, unsubscribed_at=None, topics=topics, updated_at=now)
    )
    consent.record(conn, cid, change)
    return cid

"""Deliveries: the sending side of the outbox. Claims under database-time leases, the
attempts written before a message leaves, the outcomes recorded after, and the orphans a
dead daemon leaves behind.

Every function takes an open connection; the delivery service decides the transactions.

Over 400 lines on purpose: claims, leases, attempts, results and orphans are one state
machine (planned -> sending -> sent/failed/retrying, or back after a crash), and a reader
follows one send through it without leaving the file.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.customers.addresses import address_hash
from dripper.customers.model import Customer
from dripper.engine.delivery import Outcome, OutcomeKind, PolicyEffect
from dripper.engine.model import EnrollmentStatus, EventFacts, SendStatus
from dripper.store import rows
from dripper.store.engine import dialect_of
from dripper.store.enrollments import event_facts
from dripper.store.schema import (
    campaign_state,
    customers,
    delivery_attempts,
    enrollments,
    events,
    outbox,
    suppressions,
)
from dripper.store.sql import chunks, insert_returning_ids
from dripper.store.types import UTCDateTime


@dataclass(frozen=True)
class DueSend:
    """A claimed outbox row with everything the send-time checks need."""

    id: int
    enrollment_id: int
    campaign: str
    occurrence: str
    step: str
    due_at: datetime
    variant: int
    message_id: str
    attempts: int
    customer: Customer
    enrollment_status: EnrollmentStatus
    event: EventFacts | None
    suppressed: bool
    suppression: str | None = None  # why (unsubscribed, bounced, complained, ...)
    kind: str = "email"  # or "task", "webhook" (DESIGN 16)
    held: bool = False  # its enrollment is held out (`holdout:`, DESIGN 17)


def claim_due(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    owner: str,
    lease: timedelta,
    new_message_id: Callable[[], str],
    claim: bool = True,
) -> list[DueSend]:
    """Claim up to `limit` planned sends due by `now` and load what deciding needs.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so any number of daemons share the outbox. SQLite:
    the caller's transaction began IMMEDIATE (one writer), and one daemon runs per file.
    """
    dialect = dialect_of(conn)
    o = outbox.c
    paused = sa.select(campaign_state.c.campaign).where(campaign_state.c.paused.is_(True))
    pick = (
        sa.select(o.id)
        .where(
            o.status == SendStatus.PLANNED.value,
            o.next_attempt_at <= now,
            o.campaign.not_in(paused),
        )
        .order_by(o.next_attempt_at, o.id)
        .limit(limit)
    )
    if dialect == "postgresql" and claim:
        pick = pick.with_for_update(skip_locked=True)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return []
    if not claim:  # --dry-run: look, change nothing (Message-IDs made up for the render)
        return _load_due(conn, ids, {oid: new_message_id() for oid in ids})
    conn.execute(
        sa.update(outbox)
        .where(o.id.in_(ids))
        .values(
            status=SendStatus.SENDING.value,
            lease_owner=owner,
            # Database time, not `now` (which --now may fix): every daemon on every machine
            # judges a lease by the same clock.
            lease_until=db_clock(conn) + lease,
            updated_at=now,
        )
    )
    # A Message-ID is made once per delivery and kept for every retry of it.
    missing = list(
        conn.execute(sa.select(o.id).where(o.id.in_(ids), o.message_id.is_(None))).scalars()
    )
    if missing:
        conn.execute(
            sa.update(outbox).where(o.id == sa.bindparam("oid")),
            [{"oid": oid, "message_id": new_message_id()} for oid in missing],
        )
    return _load_due(conn, ids, {})


def _load_due(
    conn: Connection, ids: Sequence[int], message_ids: Mapping[int, str]
) -> list[DueSend]:
    o = outbox.c
    claimed = conn.execute(sa.select(outbox).where(o.id.in_(ids)).order_by(o.next_attempt_at))
    rows_ = list(claimed.mappings())
    customer_ids = {r["customer_id"] for r in rows_}
    people = {
        r["id"]: rows.customer(r)
        for r in conn.execute(
            sa.select(customers).where(customers.c.id.in_(customer_ids))
        ).mappings()
    }
    enrollment_rows = {
        r.id: r
        for r in conn.execute(
            sa.select(
                enrollments.c.id,
                enrollments.c.status,
                enrollments.c.event_id,
                enrollments.c.held,
            ).where(
                enrollments.c.id.in_({r["enrollment_id"] for r in rows_})
            )
        )
    }
    event_ids = {e.event_id for e in enrollment_rows.values() if e.event_id is not None}
    facts = (
        {
            r.id: event_facts(r)
            for r in conn.execute(sa.select(events).where(events.c.id.in_(event_ids)))
        }
        if event_ids
        else {}
    )
    hashes = {address_hash(p.email): cid for cid, p in people.items()}
    s = suppressions.c
    blocked = {
        hashes[row.address_hash]: row.reason
        for row in conn.execute(
            sa.select(s.address_hash, s.reason).where(s.address_hash.in_(hashes))
        )
    }
    result = []
    for r in rows_:
        enrollment = enrollment_rows[r["enrollment_id"]]
        result.append(
            DueSend(
                id=r["id"],
                enrollment_id=r["enrollment_id"],
                campaign=r["campaign"],
                occurrence=r["occurrence"],
                step=r["step"],
                due_at=r["due_at"],
                variant=r["variant"] or 0,
                message_id=r["message_id"] or message_ids.get(r["id"], ""),
                attempts=r["attempts"],
                customer=people[r["customer_id"]],
                enrollment_status=EnrollmentStatus(enrollment.status),
                event=facts.get(enrollment.event_id) if enrollment.event_id else None,
                suppressed=r["customer_id"] in blocked,
                suppression=blocked.get(r["customer_id"]),
                kind=r["kind"],
                held=bool(enrollment.held),
            )
        )
    return result


def give_referral_codes(conn: Connection, due: Sequence[DueSend]) -> list[DueSend]:
    """A step of its own after a claim: the customers about to be emailed get their
    referral code if they have none (random, so nobody can guess another's; templates
    show it as `referral_url`). The sends come back with their customers' codes."""
    people = _with_codes(conn, {send.customer.id: send.customer for send in due})
    return [replace(send, customer=people[send.customer.id]) for send in due]


def _with_codes(conn: Connection, people: dict[int, Customer]) -> dict[int, Customer]:
    missing = [cid for cid, person in people.items() if person.referral_code is None]
    if not missing:
        return people
    codes = {cid: secrets.token_hex(8) for cid in missing}
    conn.execute(
        sa.update(customers)
        .where(customers.c.id == sa.bindparam("cid"), customers.c.referral_code.is_(None))
        .values(referral_code=sa.bindparam("code")),
        [{"cid": cid, "code": code} for cid, code in codes.items()],
    )
    # Read back: a daemon claiming another send of the same customer may have been first.
    query = sa.select(customers.c.id, customers.c.referral_code).where(customers.c.id.in_(missing))
    stored = {row.id: row.referral_code for row in conn.execute(query)}
    return {
        cid: replace(person, referral_code=stored.get(cid, person.referral_code))
        for cid, person in people.items()
    }


def recent_sends(
    conn: Connection,
    customer_ids: Iterable[int],
    *,
    since: datetime,
    campaigns: Sequence[str],
    exempt_steps: Collection[tuple[str, str]] = (),
) -> dict[int, list[datetime]]:
    """Sends to these customers since `since` from the given (non-transactional)
    campaigns, less their transactional steps: what the frequency cap counts."""
    o = outbox.c
    found: dict[int, list[datetime]] = {}
    ids = list(customer_ids)
    if not ids or not campaigns:
        return found
    query = sa.select(o.customer_id, o.sent_at, o.campaign, o.step).where(
        o.customer_id.in_(ids),
        o.status == SendStatus.SENT.value,
        o.kind == "email",  # a task or a webhook is no email: the cap does not count it
        o.sent_at > since,
        o.campaign.in_(campaigns),
    )
    for row in conn.execute(query):
        if (row.campaign, row.step) not in exempt_steps:
            found.setdefault(row.customer_id, []).append(row.sent_at)
    return found


@dataclass(frozen=True)
class SendResult:
    """What became of one claimed send."""

    id: int
    status: SendStatus  # SENT, FAILED, SKIPPED, CANCELLED, AMBIGUOUS, or PLANNED (deferred)
    reason: str | None = None
    next_attempt_at: datetime | None = None  # for PLANNED
    attempted: bool = False  # a delivery attempt was made (record it)
    outcome: str | None = None
    smtp_code: int | None = None
    smtp_enhanced: str | None = None
    smtp_reply: str | None = None
    started_at: datetime | None = None
    suppress: bool = False  # the policy's verdict: the address does not exist
    policy: PolicyEffect = PolicyEffect.NONE  # ... and what it does to a run of 5.7.x

    def as_outcome(self) -> Outcome:
        """The transport's answer this result recorded."""
        kind = OutcomeKind(self.outcome) if self.outcome else OutcomeKind.FAILED
        return Outcome(kind, self.smtp_code, self.smtp_enhanced, self.smtp_reply or "")


def record_results(
    conn: Connection,
    results: Sequence[SendResult],
    *,
    now: datetime,
    attempts: Mapping[int, int] | None = None,
) -> None:
    """Write outcomes: the outbox row, the attempt (closing the open one written by
    `open_attempts`, if any), and completed enrollments."""
    if not results:
        return
    attempts = attempts or {}
    rows: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for result in results:
        rows.append(
            {
                "oid": result.id,
                "new_status": result.status.value,
                "new_reason": result.reason,
                "sent": now if result.status is SendStatus.SENT else None,
                "next": result.next_attempt_at,
                "inc": 1 if result.attempted else 0,
            }
        )
        if not result.attempted:
            continue
        outcome = {
            "finished": now,
            "new_outcome": result.outcome,
            "code": result.smtp_code,
            "enhanced": result.smtp_enhanced,
            "reply": result.smtp_reply,
        }
        attempt = attempts.get(result.id)
        if attempt is not None:
            closed.append({"aid": attempt, **outcome})
        else:
            new.append({"oid": result.id, "started": result.started_at or now, **outcome})
    # One statement per kind, executemany: a group of results costs a few round trips.
    o, a = outbox.c, delivery_attempts.c
    when = UTCDateTime()
    conn.execute(
        sa.update(outbox)
        .where(o.id == sa.bindparam("oid"))
        .values(
            status=sa.bindparam("new_status"),
            reason=sa.bindparam("new_reason"),
            lease_owner=None,
            lease_until=None,
            updated_at=sa.bindparam("now", now, type_=when),
            sent_at=sa.func.coalesce(sa.bindparam("sent", type_=when), o.sent_at),
            next_attempt_at=sa.func.coalesce(sa.bindparam("next", type_=when), o.next_attempt_at),
            attempts=o.attempts + sa.bindparam("inc"),
        ),
        [{**row, "now": now} for row in rows],
    )
    outcome_values = {
        "finished_at": sa.bindparam("finished", type_=when),
        "outcome": sa.bindparam("new_outcome"),
        "smtp_code": sa.bindparam("code"),
        "smtp_enhanced": sa.bindparam("enhanced"),
        "smtp_reply": sa.bindparam("reply"),
    }
    if closed:
        conn.execute(
            sa.update(delivery_attempts).where(a.id == sa.bindparam("aid")).values(outcome_values),
            closed,
        )
    if new:
        conn.execute(
            sa.insert(delivery_attempts).values(
                outbox_id=sa.bindparam("oid"),
                started_at=sa.bindparam("started", type_=when),
                **outcome_values,
            ),
            new,
        )
    complete_finished(conn, [r.id for r in results], now=now)


def complete_finished(conn: Connection, outbox_ids: Iterable[int], *, now: datetime) -> None:
    """Active enrollments with no send left to come are completed."""
    ids = list(outbox_ids)
    if not ids:
        return
    o, e = outbox.c, enrollments.c
    enrollment_ids = set(conn.execute(sa.select(o.enrollment_id).where(o.id.in_(ids))).scalars())
    pending = set(
        conn.execute(
            sa.select(o.enrollment_id).where(
                o.enrollment_id.in_(enrollment_ids),
                o.status.in_([SendStatus.PLANNED.value, SendStatus.SENDING.value]),
            )
        ).scalars()
    )
    done = enrollment_ids - pending
    if done:
        conn.execute(
            sa.update(enrollments)
            .where(e.id.in_(done), e.status == EnrollmentStatus.ACTIVE.value)
            .values(status=EnrollmentStatus.COMPLETED.value, ended_at=now)
        )


def db_clock(conn: Connection) -> datetime:
    """The database's clock (PostgreSQL), or this machine's (SQLite: one machine)."""
    dialect = dialect_of(conn)
    if dialect == "postgresql":
        value = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def open_attempts(conn: Connection, outbox_ids: Sequence[int], *, now: datetime) -> dict[int, int]:
    """Write an attempt without an outcome for each send about to go out, before it goes:
    after a crash, an open attempt means "possibly delivered" (ambiguous), never "not
    sent". Returns outbox id -> attempt id."""
    values = [{"outbox_id": oid, "started_at": now} for oid in outbox_ids]
    ids = insert_returning_ids(conn, delivery_attempts, values)
    return dict(zip(outbox_ids, ids, strict=True))


def extend_leases(
    conn: Connection, outbox_ids: Sequence[int], *, owner: str, lease: timedelta
) -> None:
    """Keep this daemon's claim on sends still in flight (a slow server may take minutes)."""
    until = db_clock(conn) + lease
    for part in chunks(outbox_ids):
        conn.execute(
            sa.update(outbox)
            .where(
                outbox.c.id.in_(part),
                outbox.c.lease_owner == owner,
                outbox.c.status == SendStatus.SENDING.value,
            )
            .values(lease_until=until)
        )


def give_back(conn: Connection, outbox_ids: Sequence[int], *, owner: str, now: datetime) -> int:
    """Sends this daemon claimed and never handed to the transport (a database outage
    stopped the batch first): the attempts opened for them are taken back (they never
    left, so they are not ambiguous) and the sends go back to the queue at once, not
    after their lease. Returns how many."""
    o, a = outbox.c, delivery_attempts.c
    given = 0
    for part in chunks(outbox_ids):
        conn.execute(
            sa.delete(delivery_attempts).where(a.outbox_id.in_(part), a.finished_at.is_(None))
        )
        given += conn.execute(
            sa.update(outbox)
            .where(o.id.in_(part), o.lease_owner == owner, o.status == SendStatus.SENDING.value)
            .values(
                status=SendStatus.PLANNED.value, lease_owner=None, lease_until=None, updated_at=now
            )
        ).rowcount
    return given


def recover_orphans(
    conn: Connection,
    *,
    now: datetime,
    retry_at: datetime,
    every: bool = False,
    owner: str | None = None,
) -> tuple[int, int]:
    """Sends claimed by a daemon that died. `every`: all of them (SQLite, where the caller
    holds the one-daemon lock); `owner`: all of this daemon's (after a database outage,
    when it has nothing in flight); otherwise those whose lease expired in database time.

    One that never reached the transport goes back to the queue. One with an open attempt
    may have been delivered (the daemon died during the SMTP dialogue, maybe after the
    final dot): it becomes ambiguous and is retried at `retry_at` with the same
    Message-ID, never silently requeued. Returns (requeued, ambiguous)."""
    dialect = dialect_of(conn)
    o, a = outbox.c, delivery_attempts.c
    query = sa.select(o.id).where(o.status == SendStatus.SENDING.value)
    if owner is not None:
        query = query.where(o.lease_owner == owner)
    elif not every:
        query = query.where(o.lease_until < db_clock(conn))
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    orphans = list(conn.execute(query).scalars())
    if not orphans:
        return 0, 0
    open_ = set(
        conn.execute(
            sa.select(a.outbox_id).where(a.outbox_id.in_(orphans), a.finished_at.is_(None))
        ).scalars()
    )
    requeue = [oid for oid in orphans if oid not in open_]
    released = {"lease_owner": None, "lease_until": None, "updated_at": now}
    if requeue:
        conn.execute(
            sa.update(outbox)
            .where(o.id.in_(requeue))
            .values(status=SendStatus.PLANNED.value, **released)
        )
    if open_:
        reason = "ambiguous: the daemon stopped during delivery; possibly delivered"
        conn.execute(
            sa.update(delivery_attempts)
            .where(a.outbox_id.in_(open_), a.finished_at.is_(None))
            .values(finished_at=now, outcome="ambiguous", error=reason)
        )
        conn.execute(
            sa.update(outbox)
            .where(o.id.in_(open_))
            .values(
                status=SendStatus.PLANNED.value,
                reason=reason,
                attempts=o.attempts + 1,
                next_attempt_at=retry_at,
                **released,
            )
        )
    return len(requeue), len(open_)


def status_counts(conn: Connection, *, now: datetime) -> dict[str, int]:
    """For the daemon's status line: due now, retrying, ambiguous (awaiting their retry),
    failed (ever)."""
    o = outbox.c
    planned = o.status == SendStatus.PLANNED.value
    query = sa.select(
        sa.func.count().filter(planned, o.next_attempt_at <= now),
        sa.func.count().filter(planned, o.attempts > 0),
        sa.func.count().filter(planned, o.reason.like("ambiguous%")),
        sa.func.count().filter(o.status == SendStatus.FAILED.value),
    ).where(o.status.in_([SendStatus.PLANNED.value, SendStatus.FAILED.value]))
    due, retrying, ambiguous, failed = conn.execute(query).one()
    return {"due": due, "retrying": retrying, "ambiguous": ambiguous, "failed": failed}

"""The counts behind `dripper stats`, each a set-based query (they must answer in seconds
over a million sends and millions of hits).

Tracking rows carry their email's campaign, step and variant (written with the hit), so
counting opens and clicks per step reads one table and joins none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.stats import Funnel
from dripper.store.schema import (
    customers,
    enrollments,
    events,
    inbound_messages,
    outbox,
    tracking_events,
)

Key = tuple[str, str, int]  # campaign, step, variant


def funnels(
    conn: Connection, *, campaign: str | None = None, since: datetime | None = None
) -> dict[Key, Funnel]:
    """Per campaign, step and variant: every count of DESIGN 8's stats row but the
    conversions (see `conversions`), for the emails sent since `since` (and everything
    that came back from them, whenever it came).

    Three aggregates, none of them a distinct count over every hit (at millions of hits
    that sort is what costs): the sends, with the people who opened and clicked each one
    read from `outbox.opened_at`/`clicked_at`; the hits counted by kind and class; and
    the few replies, unsubscribes, bounces and complaints counted per email."""
    found: dict[Key, Funnel] = defaultdict(Funnel)
    o = outbox.c
    variant = sa.func.coalesce(o.variant, 0)
    sent = o.status == "sent"
    query = sa.select(
        o.campaign,
        o.step,
        variant,
        sa.func.count().filter(sent),
        sa.func.count().filter(o.status == "failed"),
        sa.func.count().filter(sent, o.opened_at.is_not(None)),
        sa.func.count().filter(sent, o.clicked_at.is_not(None)),
    ).where(o.status.in_(["sent", "failed"]), o.kind == "email")  # tasks: `tasks` counts them
    if campaign is not None:
        query = query.where(o.campaign == campaign)
    if since is not None:
        query = query.where(sa.func.coalesce(o.sent_at, o.updated_at) >= since)
    for c, s, v, n_sent, n_failed, opened, clicked in conn.execute(
        query.group_by(o.campaign, o.step, variant)
    ):
        row = found[(c, s, int(v))]
        row.sent, row.failed = int(n_sent), int(n_failed)
        row.unique_opens, row.unique_clicks = int(opened), int(clicked)

    t = tracking_events.c
    t_variant = sa.func.coalesce(t.variant, 0)
    # A one-click answer is a click on a link of the email (and counted with them).
    kind = sa.case((t.kind == "answer", "click"), else_=t.kind)
    hits = sa.select(t.campaign, t.step, t_variant, kind, t.machine, sa.func.count()).where(
        t.campaign.is_not(None), t.kind.in_(["open", "click", "answer"])
    )
    once = sa.select(
        t.campaign, t.step, t_variant, t.kind, sa.func.count(sa.distinct(t.outbox_id))
    ).where(t.kind.in_(list(ONCE)), t.outbox_id.is_not(None))
    if campaign is not None:
        hits = hits.where(t.campaign == campaign)
        once = once.where(t.campaign == campaign)
    if since is not None:
        recent = _sent_since(since)
        hits = hits.where(t.outbox_id.in_(recent))
        once = once.where(t.outbox_id.in_(recent))
    for c, s, v, k, machine, n in conn.execute(
        hits.group_by(t.campaign, t.step, t_variant, kind, t.machine)
    ):
        row = found[(c, s, int(v))]
        if k == "open":
            if machine:
                row.opens_machine += int(n)
            else:
                row.opens_human += int(n)
        elif machine:
            row.clicks_scanner += int(n)
        else:
            row.clicks_human += int(n)
    for c, s, v, k, n in conn.execute(once.group_by(t.campaign, t.step, t_variant, t.kind)):
        if c is not None:
            setattr(found[(c, s, int(v))], ONCE[k], int(n))
    return dict(found)


# What happens to an email at most once, and the Funnel field that counts it (a hard
# bounce: the email was never delivered).
ONCE = {
    "bounce": "bounced",
    "reply": "replies",
    "unsubscribe": "unsubscribes",
    "complaint": "complaints",
}


@dataclass
class Converted:
    """The conversions of one stats row and what they brought (see `Funnel`)."""

    count: int = 0
    revenue: float = 0.0
    refunds: float = 0.0
    revenue_other: dict[str, float] = field(default_factory=dict)

    def add(self, amount: float, currency: str | None, company: str) -> None:
        """A purchase's amount (negative: a refund) in its currency (None: the company's)."""
        code = (currency or company).upper()
        if code == company:
            self.revenue += amount
            self.refunds += -amount if amount < 0 else 0.0
        else:
            self.revenue_other[code] = self.revenue_other.get(code, 0.0) + amount


def conversions(
    conn: Connection,
    *,
    campaign: str | None = None,
    since: datetime | None = None,
    currency: str = "USD",
) -> dict[Key, Converted]:
    """Goals reached, attributed to the last step sent before them (and its variant), with
    the revenue of the converting purchases less what their refunds returned, counted in
    the company's `currency` (other currencies apart: never added together). Grouped by
    amount and currency in the database (a shop's orders repeat a few prices), so a million
    conversions are a few hundred rows here; refunds are few, and joined to their
    purchase by its id (`data.order`)."""
    e, o, ev = enrollments.c, outbox.c, events.c
    attributed = sa.and_(o.enrollment_id == e.id, o.step == e.attributed_step)
    variant = sa.func.coalesce(o.variant, 0)
    purchase = ev.type == "purchase"
    amount = sa.case((purchase, ev.data["amount"].as_string()), else_=None)
    money = sa.case((purchase, ev.data["currency"].as_string()), else_=None)
    query = (
        sa.select(e.campaign, e.attributed_step, variant, amount, money, sa.func.count())
        .select_from(
            enrollments.join(outbox, attributed).outerjoin(events, ev.id == e.converted_event_id)
        )
        .where(e.status == "converted", e.attributed_step.is_not(None))
        .group_by(e.campaign, e.attributed_step, variant, amount, money)
    )
    if campaign is not None:
        query = query.where(e.campaign == campaign)
    if since is not None:
        query = query.where(o.sent_at >= since)
    found: dict[Key, Converted] = defaultdict(Converted)
    for c, step, v, price, code, count in conn.execute(query):
        row = found[(c, step, int(v))]
        row.count += int(count)
        row.add(int(count) * _amount(price), code, currency)
    for key, returned, code in _refunds(conn, campaign=campaign, since=since):
        found[key].add(-returned, code, currency)
    return dict(found)


def _refunds(
    conn: Connection, *, campaign: str | None, since: datetime | None
) -> list[tuple[Key, float, str | None]]:
    """The refunds of converting purchases (a refund's `data.order` is its purchase's
    id), per stats row, with their currency: their own, else the purchase's."""
    e, o = enrollments.c, outbox.c
    bought, back = events.alias("bought"), events.alias("back")
    attributed = sa.and_(o.enrollment_id == e.id, o.step == e.attributed_step)
    query = (
        sa.select(
            e.campaign,
            e.attributed_step,
            sa.func.coalesce(o.variant, 0),
            back.c.data["amount"].as_string(),
            back.c.data["currency"].as_string(),
            bought.c.data["currency"].as_string(),
        )
        .select_from(
            enrollments.join(outbox, attributed)
            .join(bought, bought.c.id == e.converted_event_id)
            .join(
                back,
                sa.and_(
                    back.c.customer_id == bought.c.customer_id,
                    back.c.type == "refund",
                    back.c.data["order"].as_string() == bought.c.ext_id,
                ),
            )
        )
        .where(
            e.status == "converted",
            e.attributed_step.is_not(None),
            bought.c.type == "purchase",
            bought.c.ext_id.is_not(None),
        )
    )
    if campaign is not None:
        query = query.where(e.campaign == campaign)
    if since is not None:
        query = query.where(o.sent_at >= since)
    return [
        ((c, step, int(v)), _amount(price), own or theirs)
        for c, step, v, price, own, theirs in conn.execute(query)
    ]


def _amount(text: Any) -> float:
    """A purchase's `amount` (validated when it was recorded; anything else counts 0)."""
    if text is None:
        return 0.0
    try:
        return float(Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return 0.0


@dataclass(frozen=True)
class SecondSale:
    """Customers with a first purchase: how many bought again, and how soon."""

    reached: bool  # the welcome sequence reached them (one of its emails was sent)
    customers: int
    bought_again: int
    days_to_second: list[float]


def second_sale(conn: Connection, welcome: Iterable[str]) -> list[SecondSale]:
    """Split by whether an email of the `welcome` campaigns was sent to the customer. The
    counts are two aggregates over the customers (all buyers, and those reached: a semi-join
    the database hashes once); the second purchase's time is looked up (by index) only for
    those who bought again."""
    c, o, ev = customers.c, outbox.c, events.c
    names = list(welcome)
    sent_to = sa.select(o.customer_id).where(o.campaign.in_(names), o.status == "sent")
    reached = c.id.in_(sent_to) if names else sa.false()
    buyers = c.first_purchase_at.is_not(None)
    tally = sa.select(sa.func.count(), sa.func.count().filter(c.purchases >= 2)).where(buyers)
    everyone, everyone_again = conn.execute(tally).one()
    hit, hit_again = conn.execute(tally.where(reached)).one() if names else (0, 0)
    counts = {
        True: (int(hit), int(hit_again)),
        False: (int(everyone) - int(hit), int(everyone_again) - int(hit_again)),
    }
    # With exactly two purchases the second is the last (kept on the customer); only
    # customers with more need their purchases looked up.
    second = sa.case(
        (c.purchases == 2, c.last_purchase_at),
        else_=sa.select(ev.at)
        .where(ev.customer_id == c.id, ev.type == "purchase")
        .order_by(ev.at, ev.id)
        .offset(1)
        .limit(1)
        .scalar_subquery(),
    )
    # Per repeat buyer an index probe (EXISTS), never `IN (...)` in a select list, which
    # PostgreSQL may run as a scan of the sends per row.
    probe = (
        sa.exists().where(o.customer_id == c.id, o.campaign.in_(names), o.status == "sent")
        if names
        else sa.false()
    )
    flag = sa.case((probe, 1), else_=0)
    days: dict[bool, list[float]] = {True: [], False: []}
    query = sa.select(flag, c.first_purchase_at, second).where(buyers, c.purchases >= 2)
    for was_reached, first, at in conn.execute(query):
        if at is not None and first is not None:
            days[bool(was_reached)].append(
                round((_utc(at) - _utc(first)).total_seconds() / 86400, 2)
            )
    return [SecondSale(r, counts[r][0], counts[r][1], days[r]) for r in (True, False)]


def _utc(at: datetime) -> datetime:
    from datetime import UTC

    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@dataclass(frozen=True)
class Silent:
    email: str
    last_email: datetime | None


def silent(
    conn: Connection, *, cadence: timedelta, now: datetime, limit: int
) -> tuple[int, list[Silent]]:
    """Subscribed customers whose last email is older than `cadence` (or who never had one
    and have been customers that long) and who have nothing planned before `now + cadence`:
    how many, and the first `limit` by address with their last email. Two NOT EXISTS
    probes per customer (by index), never a maximum over every send (ten times slower)."""
    c, o = customers.c, outbox.c
    cutoff = now - cadence
    # Emails only: a card on a person's list is no email from the shop.
    email = o.kind == "email"
    recent = sa.exists().where(
        o.customer_id == c.id, o.status == "sent", email, o.sent_at >= cutoff
    )
    planned = sa.exists().where(
        o.customer_id == c.id,
        email,
        o.status.in_(["planned", "sending"]),
        o.next_attempt_at <= now + cadence,
    )
    who = sa.and_(c.status == "subscribed", c.created_at < cutoff, ~recent, ~planned)
    total = int(conn.execute(sa.select(sa.func.count()).where(who)).scalar_one())
    last = (
        sa.select(sa.func.max(o.sent_at))
        .where(o.customer_id == c.id, o.status == "sent", email)
        .scalar_subquery()
    )
    first = conn.execute(sa.select(c.email, last).where(who).order_by(c.email).limit(limit))
    return total, [Silent(email, at) for email, at in first]


def _sent_since(since: datetime) -> sa.Select[tuple[int]]:
    """The emails sent since `since`: what `--since` counts, and what came back from them."""
    return sa.select(outbox.c.id).where(outbox.c.sent_at >= since)


def answers(
    conn: Connection, *, campaign: str | None = None, since: datetime | None = None
) -> dict[str, dict[str, int]]:
    """One-click answers by question, counted per answer (people's, not scanners'), to the
    emails of `campaign` sent since `since`."""
    t = tracking_events.c
    question = t.data["question"].as_string()
    answer = t.data["answer"].as_string()
    query = sa.select(question, answer, sa.func.count()).where(
        t.kind == "answer", t.machine.is_(False), question.is_not(None)
    )
    if campaign is not None:
        query = query.where(t.campaign == campaign)
    if since is not None:
        query = query.where(t.outbox_id.in_(_sent_since(since)))
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for q, a, n in conn.execute(query.group_by(question, answer)):
        found[str(q)][str(a or "")] = int(n)
    return dict(found)


@dataclass(frozen=True)
class Waiting:
    """A customer whose replies nobody has answered yet: how many, and the latest."""

    email: str
    replies: int
    subject: str
    received_at: datetime


def waiting_replies(conn: Connection) -> list[Waiting]:
    """Customers who replied and were not answered yet (`dripper customers answered EMAIL`
    says they were), the longest waiting first. Forwarded replies are listed too: a
    forward reached a person, not necessarily an answer."""
    m, c = inbound_messages.c, customers.c
    query = (
        sa.select(c.email, m.subject, m.received_at)
        .select_from(inbound_messages.join(customers, c.id == m.customer_id))
        .where(m.kind == "reply", m.answered_at.is_(None))
        .order_by(m.received_at, m.id)
    )
    first: dict[str, datetime] = {}
    latest: dict[str, tuple[int, str, datetime]] = {}
    for email, subject, at in conn.execute(query):
        first.setdefault(email, at)
        n = latest[email][0] if email in latest else 0
        latest[email] = (n + 1, subject or "", at)
    return [Waiting(e, *latest[e]) for e in sorted(first, key=lambda e: (first[e], e))]


def mark_answered(conn: Connection, customer_id: int, *, now: datetime) -> int:
    m = inbound_messages.c
    return conn.execute(
        sa.update(inbound_messages)
        .where(m.customer_id == customer_id, m.kind == "reply", m.answered_at.is_(None))
        .values(answered_at=now)
    ).rowcount


def hits_by_day(
    conn: Connection, *, campaign: str | None = None, since: datetime | None = None
) -> dict[str, dict[str, int]]:
    """People's opens and clicks per UTC day (the picture of the preview's /stats page),
    on the emails of `campaign` sent since `since`."""
    t = tracking_events.c
    if conn.dialect.name == "sqlite":
        day = sa.func.date(t.at)  # stored as naive UTC text
    else:
        day = sa.func.date(sa.func.timezone("UTC", t.at))  # not the session's time zone
    kind = sa.case((t.kind == "answer", "click"), else_=t.kind)
    query = sa.select(day, kind, sa.func.count()).where(
        t.kind.in_(["open", "click", "answer"]), t.machine.is_(False)
    )
    if campaign is not None:
        query = query.where(t.campaign == campaign)
    if since is not None:
        query = query.where(t.outbox_id.in_(_sent_since(since)))
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for when, k, n in conn.execute(query.group_by(day, kind)):
        found[str(when)[:10]][k] = int(n)
    return dict(sorted(found.items()))

"""A holdout's two groups (DESIGN 17), for `stats`: per enrollment of the campaign, whether
the customer reached the goal (a `goal.event`, else a purchase) within the window after
enrolling, and what they spent in it (purchases in the company currency). One grouped join
over the events index by customer, type and time; the groups are summed here."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.holdout import Group
from dripper.store.engine import dialect_of
from dripper.store.schema import enrollments, events
from dripper.store.types import UTCDateTime


def groups(
    conn: Connection,
    campaign: str,
    *,
    goal: str,
    window: timedelta,
    now: datetime,
    currency: str,
) -> tuple[Group, Group]:
    """(emailed, held out) for `campaign`: each enrollment counts once."""
    e, ev = enrollments.c, events.c
    days = window.total_seconds() / 86400
    if dialect_of(conn) == "postgresql":
        within = ev.at <= e.enrolled_at + sa.func.make_interval(0, 0, 0, 0, 0, 0, days * 86400)
    else:  # as numbers: SQLite's datetime() text drops the microseconds the times keep
        within = sa.func.julianday(ev.at) <= sa.func.julianday(e.enrolled_at) + days
    amount = sa.func.coalesce(ev.data["amount"].as_float(), 0.0)
    code = sa.func.upper(sa.func.coalesce(ev.data["currency"].as_string(), currency))
    spent = sa.case((sa.and_(ev.type == "purchase", code == currency.upper()), amount), else_=0.0)
    reached = sa.case((ev.type == goal, 1), else_=0)
    at_now = sa.bindparam("now", now, type_=UTCDateTime)
    query = (
        sa.select(e.held, sa.func.max(reached), sa.func.sum(spent))
        .select_from(
            enrollments.outerjoin(
                events,
                sa.and_(
                    ev.customer_id == e.customer_id,
                    ev.type.in_(sorted({goal, "purchase"})),
                    ev.at > e.enrolled_at,
                    within,
                    ev.at <= at_now,
                ),
            )
        )
        .where(e.campaign == campaign)
        .group_by(e.id, e.held)
    )
    counts = {False: [0, 0], True: [0, 0]}
    revenue: dict[bool, list[int]] = {False: [], True: []}
    for held, hit, total in conn.execute(query):
        side = bool(held)
        counts[side][0] += 1
        counts[side][1] += 1 if hit else 0
        cents = round(float(total or 0) * 100)
        if cents > 0:
            revenue[side].append(cents)
    emailed = Group(counts[False][0], counts[False][1], revenue[False])
    held_out = Group(counts[True][0], counts[True][1], revenue[True])
    return emailed, held_out

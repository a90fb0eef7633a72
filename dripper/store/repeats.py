"""A repeating `when:` trigger's memory (DESIGN 14): each customer's latest occurrence of a
campaign (`when:N`; the one-off `once` counts as 1) and whether they have been seen not
matching since it began (`enrollments.lapsed_at`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.plan import occurrence_number
from dripper.store.schema import enrollments
from dripper.store.sql import chunks


def latest(
    conn: Connection, campaign: str, customer_ids: Sequence[int]
) -> dict[int, tuple[int, bool, str]]:
    """Each customer's latest occurrence: its number, whether it lapsed, its name."""
    e = enrollments.c
    found: dict[int, tuple[int, bool, str]] = {}
    for part in chunks(customer_ids):
        rows = conn.execute(
            sa.select(e.customer_id, e.occurrence, e.lapsed_at).where(
                e.campaign == campaign, e.customer_id.in_(part)
            )
        )
        for cid, occurrence, lapsed_at in rows:
            number = occurrence_number(occurrence)
            if number is not None and (cid not in found or number > found[cid][0]):
                found[cid] = (number, lapsed_at is not None, occurrence)
    return found


def mark_lapsed(
    conn: Connection, campaign: str, items: Iterable[tuple[int, str]], *, now: datetime
) -> int:
    """These (customer id, occurrence) were seen not matching: the next match starts anew."""
    e = enrollments.c
    stmt = (
        sa.update(enrollments)
        .where(
            e.campaign == campaign,
            e.customer_id == sa.bindparam("cid"),
            e.occurrence == sa.bindparam("occ"),
            e.lapsed_at.is_(None),
        )
        .values(lapsed_at=now)
    )
    params = [{"cid": cid, "occ": occurrence} for cid, occurrence in items]
    if not params:
        return 0
    conn.execute(stmt, params)
    return len(params)

"""What the listening half stores of tracking: which delivery a token names, the hits
(opens and clicks, with their class), and what the classifier needs to know of the hits
before (recent clicks of the email, whether a person opened it).

Every function takes an open connection; the listening service owns the transactions.
A delivery is named by the random part of its Message-ID (never a database id), and its
row is found through the Message-ID's unique index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.schema import customers, outbox, tracking_events
from dripper.store.sql import chunks


@dataclass(frozen=True)
class Delivery:
    """One email dripper sent (or is sending), as a token names it."""

    delivery_id: str
    outbox_id: int
    customer_id: int
    email: str
    campaign: str
    step: str
    sent_at: datetime | None
    message_id: str


_DELIVERY_COLUMNS = (
    outbox.c.id,
    outbox.c.customer_id,
    outbox.c.campaign,
    outbox.c.step,
    outbox.c.sent_at,
    outbox.c.message_id,
    customers.c.email,
)


def deliveries(
    conn: Connection, delivery_ids: Iterable[str], *, domain: str
) -> dict[str, Delivery]:
    """The deliveries these ids name, by id. A Message-ID is `<id>@<domain of From>`: the
    exact ids are looked up by the unique index; an id not found there (the From domain
    changed since it was sent) is looked up by prefix."""
    wanted = {d for d in delivery_ids if d}
    found: dict[str, Delivery] = {}
    join = outbox.join(customers, customers.c.id == outbox.c.customer_id)
    for part in chunks(sorted(wanted)):
        ids = [f"{d}@{domain}" for d in part]
        query = sa.select(*_DELIVERY_COLUMNS).select_from(join).where(outbox.c.message_id.in_(ids))
        for row in conn.execute(query):
            found[row.message_id.split("@", 1)[0]] = _delivery(row)
    for missing in wanted - found.keys():
        query = (
            sa.select(*_DELIVERY_COLUMNS)
            .select_from(join)
            .where(outbox.c.message_id.like(f"{missing}@%"))
            .limit(1)
        )
        first = conn.execute(query).first()
        if first is not None:
            found[missing] = _delivery(first)
    return found


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.message_id.split("@", 1)[0],
        row.id,
        row.customer_id,
        row.email,
        row.campaign,
        row.step,
        row.sent_at,
        row.message_id,
    )


@dataclass(frozen=True)
class StoredHit:
    """A classified open or click, as it is written."""

    outbox_id: int
    customer_id: int
    kind: str  # open, click (TrackingKind)
    at: datetime
    machine: bool  # a machine open or a scanner click
    url: str | None
    user_agent: str | None
    data: dict[str, Any]


def insert_hits(conn: Connection, hits: Sequence[StoredHit]) -> None:
    """One executemany for a batch of hits."""
    if not hits:
        return
    conn.execute(
        sa.insert(tracking_events),
        [
            {
                "outbox_id": h.outbox_id,
                "customer_id": h.customer_id,
                "kind": h.kind,
                "at": h.at,
                "machine": h.machine,
                "url": h.url,
                "user_agent": (h.user_agent or "")[:500] or None,
                "data": h.data,
            }
            for h in hits
        ],
    )


def recent_clicks(
    conn: Connection, outbox_ids: Iterable[int], *, since: datetime
) -> dict[int, list[tuple[datetime, str]]]:
    """Clicks of these emails since `since`, oldest first: what a burst is judged by."""
    found: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    t = tracking_events.c
    for part in chunks(sorted(set(outbox_ids))):
        query = (
            sa.select(t.outbox_id, t.at, t.url)
            .where(t.outbox_id.in_(part), t.kind == "click", t.at >= since)
            .order_by(t.at)
        )
        for row in conn.execute(query):
            found[row.outbox_id].append((row.at, row.url or ""))
    return found


def opened_by_a_person(conn: Connection, outbox_ids: Iterable[int]) -> set[int]:
    """The emails among these that already have a human open."""
    t = tracking_events.c
    found: set[int] = set()
    for part in chunks(sorted(set(outbox_ids))):
        query = sa.select(t.outbox_id).where(
            t.outbox_id.in_(part), t.kind == "open", t.machine.is_(False)
        )
        found.update(conn.execute(query).scalars())
    return found


def mark_burst(conn: Connection, outbox_id: int, *, since: datetime, until: datetime) -> None:
    """The clicks of one email in a burst window were a robot's: count them as scanner
    clicks (and drop the opens they implied)."""
    t = tracking_events.c
    in_window = (t.outbox_id == outbox_id, t.at >= since, t.at <= until)
    conn.execute(
        sa.update(tracking_events)
        .where(*in_window, t.kind == "click", t.machine.is_(False))
        .values(machine=True)
    )
    implied = sa.func.coalesce(
        sa.cast(t.data["implied"].as_string(), sa.String), sa.literal("")
    )  # JSON: an open a click implied carries {"implied": "click"}
    conn.execute(
        sa.delete(tracking_events).where(*in_window, t.kind == "open", implied == "click")
    )

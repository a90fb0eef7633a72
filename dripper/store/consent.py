"""The consent record (DESIGN 13): every change of a customer's marketing, kept with when,
what, where from and what the person was shown; read back for `customers show` and
`customers export`. Erased with the customer (the foreign key cascades on `forget`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.records import ConsentChange
from dripper.store.schema import consent_records
from dripper.store.sql import chunks


def record(conn: Connection, customer_id: int, change: ConsentChange) -> None:
    record_many(conn, [(customer_id, change)])


def record_many(conn: Connection, changes: Iterable[tuple[int, ConsentChange]]) -> None:
    """Keep these changes (one executemany per thousand)."""
    for chunk in chunks(changes):
        conn.execute(
            sa.insert(consent_records),
            [
                {
                    "customer_id": cid,
                    "at": c.at,
                    "kind": c.kind,
                    "marketing": c.marketing,
                    "source": c.source[:500],
                    "ip": c.ip,
                    "user_agent": (c.user_agent or None) and c.user_agent[:500],
                    "text_hash": c.text_hash,
                    "topics": None if c.topics is None else list(c.topics),
                }
                for cid, c in chunk
            ],
        )


def history(conn: Connection, customer_id: int) -> list[ConsentChange]:
    """A customer's changes, oldest first."""
    t = consent_records.c
    rows = conn.execute(
        sa.select(consent_records).where(t.customer_id == customer_id).order_by(t.at, t.id)
    ).mappings()
    return [
        ConsentChange(
            at=row["at"],
            kind=row["kind"],
            marketing=row["marketing"],
            source=row["source"],
            ip=row["ip"],
            user_agent=row["user_agent"],
            text_hash=row["text_hash"],
            topics=None if row["topics"] is None else tuple(row["topics"]),
        )
        for row in rows
    ]


def latest(conn: Connection, customer_ids: Sequence[int]) -> dict[int, tuple[datetime, str]]:
    """Each customer's last change: (when, "kind:source"), for the export's columns."""
    t = consent_records.c
    found: dict[int, tuple[datetime, str]] = {}
    for chunk in chunks(customer_ids):
        newest = (
            sa.select(t.customer_id, sa.func.max(t.id).label("id"))
            .where(t.customer_id.in_(chunk))
            .group_by(t.customer_id)
            .subquery()
        )
        rows = conn.execute(
            sa.select(t.customer_id, t.at, t.kind, t.source).join(newest, newest.c.id == t.id)
        )
        for cid, at, kind, source in rows:
            found[cid] = (at, f"{kind}:{source}" if source else kind)
    return found


def choose_topics(
    conn: Connection,
    email: str,
    topics: tuple[str, ...],
    *,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """The topics a customer kept (the preference page), kept in the record as `topics`.
    Their marketing stays what it was: choosing topics is not a new consent."""
    from dripper.store.schema import customers

    c = customers.c
    row = conn.execute(
        sa.select(c.id, c.status, c.topics).where(c.email == email).with_for_update()
    ).first()
    if row is None:
        return False
    cid, status, before = row
    if before is not None and tuple(before) == topics:
        return True
    conn.execute(
        sa.update(customers).where(c.id == cid).values(topics=list(topics), updated_at=now)
    )
    record(
        conn,
        cid,
        ConsentChange(now, "topics", status, "preference page", ip, user_agent, None, topics),
    )
    return True


def topic_choices(conn: Connection) -> list[tuple[tuple[str, ...], int]]:
    """How many customers (not unsubscribed) kept each set of topics: only those who
    chose (NULL is every topic), grouped by the set, so a few rows however many people."""
    from dripper.store.schema import customers

    c = customers.c
    query = (
        sa.select(c.topics, sa.func.count())
        .where(c.topics.is_not(None), c.status != "unsubscribed")
        .group_by(c.topics)
    )
    return [(tuple(topics), int(count)) for topics, count in conn.execute(query)]

"""What the listening half stores of tracking: which delivery a token names, the hits
(opens and clicks, with their class), and what the classifier needs to know of the hits
before (recent clicks of the email, whether a person opened it).

Every function takes an open connection; the listening service owns the transactions.
A delivery is named by the random part of its Message-ID (never a database id), and its
row is found through the Message-ID's unique index.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store import message_domains
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
    variant: int = 0


_DELIVERY_COLUMNS = (
    outbox.c.id,
    outbox.c.customer_id,
    outbox.c.campaign,
    outbox.c.step,
    outbox.c.sent_at,
    outbox.c.message_id,
    outbox.c.variant,
    customers.c.email,
)


def deliveries(
    conn: Connection, delivery_ids: Iterable[str], *, domain: str
) -> dict[str, Delivery]:
    """The deliveries these ids name, by id. A Message-ID is `<id>@<domain of From>`: the
    exact ids are looked up by the unique index; an id not found there (the From domain
    changed since it was sent, or it is not ours any more) is looked up with the other
    domains dripper gave (message_domains): always by the index, never by a scan."""
    wanted = {d for d in delivery_ids if d}
    found: dict[str, Delivery] = {}
    join = outbox.join(customers, customers.c.id == outbox.c.customer_id)

    def look_up(ids: Sequence[str]) -> None:
        for part in chunks(sorted(ids)):
            query = (
                sa.select(*_DELIVERY_COLUMNS)
                .select_from(join)
                .where(outbox.c.message_id.in_(part))
            )
            for row in conn.execute(query):
                found[row.message_id.split("@", 1)[0]] = _delivery(row)

    look_up([f"{d}@{domain}" for d in wanted])
    missing = wanted - found.keys()
    if missing:
        others = message_domains.known(conn)
        look_up(list(message_domains.message_ids(missing, others, besides=domain)))
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
        row.variant or 0,
    )


@dataclass(frozen=True)
class Sent:
    """What the hit writer needs of an email: its row, its customer, when it went out."""

    outbox_id: int
    customer_id: int
    sent_at: datetime | None
    campaign: str = ""
    step: str = ""
    variant: int = 0
    opened: bool = False  # a person's open is stored (`outbox.opened_at`)
    clicked: bool = False  # and a person's click (`outbox.clicked_at`)


def sent(conn: Connection, delivery_ids: Iterable[str], *, domain: str) -> dict[str, Sent]:
    """`deliveries` for the hit writer: only what classifying and storing a hit needs,
    through the driver (a batch of 500 hits costs one query, not 500 row objects)."""
    wanted = sorted({d for d in delivery_ids if d})
    found: dict[str, Sent] = {}
    if not wanted:
        return found
    ids = [f"{d}@{domain}" for d in wanted]
    driver = conn.connection.driver_connection
    assert driver is not None
    rows: list[tuple[Any, ...]] = []
    if conn.dialect.name == "postgresql":
        with driver.cursor() as cursor:
            cursor.execute(_PG_SENT, (ids,))
            rows = cursor.fetchall()
    else:
        for part in chunks(ids, 500):  # SQLite's limit on parameters is far above this
            marks = ", ".join("?" * len(part))
            rows += driver.execute(_SQLITE_SENT.format(marks), part).fetchall()
    for message_id, outbox_id, customer_id, sent_at, campaign, step, variant, o, c in rows:
        found[message_id.split("@", 1)[0]] = Sent(
            outbox_id, customer_id, _when(sent_at), campaign, step, variant or 0, bool(o), bool(c)
        )
    missing = set(wanted) - found.keys()  # sent when the From domain was another, or gone
    for missing_id, other in deliveries(conn, missing, domain=domain).items():
        firsts = conn.execute(
            sa.select(outbox.c.opened_at.is_not(None), outbox.c.clicked_at.is_not(None)).where(
                outbox.c.id == other.outbox_id
            )
        ).one()
        found[missing_id] = Sent(
            other.outbox_id,
            other.customer_id,
            other.sent_at,
            other.campaign,
            other.step,
            other.variant,
            bool(firsts[0]),
            bool(firsts[1]),
        )
    return found


_SENT = (
    "SELECT message_id, id, customer_id, sent_at, campaign, step, variant, "
    "opened_at IS NOT NULL, clicked_at IS NOT NULL FROM outbox "
)
_PG_SENT = _SENT + "WHERE message_id = ANY(%s)"
_SQLITE_SENT = _SENT + "WHERE message_id IN ({})"


@dataclass(frozen=True, slots=True)
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
    campaign: str | None = None  # the email's, so the stats count without a join
    step: str | None = None
    variant: int | None = None


# Per column of `mark_firsts`, the emails for which it is already set.
KnownFirsts = dict[str, set[int]]

_HIT_COLUMNS = (
    "outbox_id",
    "customer_id",
    "kind",
    "at",
    "machine",
    "url",
    "user_agent",
    "data",
    "campaign",
    "step",
    "variant",
)
_SQLITE_INSERT = "INSERT INTO tracking_events ({}) VALUES ({})".format(  # noqa: S608 (constants)
    ", ".join(_HIT_COLUMNS), ", ".join("?" * len(_HIT_COLUMNS))
)


def insert_hits(
    conn: Connection, hits: Sequence[StoredHit], *, known: KnownFirsts | None = None
) -> None:
    """A batch of hits in one statement, through the driver: COPY on PostgreSQL, one
    executemany on SQLite (through SQLAlchemy a row cost ~20 us more than the write).
    Values are what SQLAlchemy would have bound: UTC times (naive text on SQLite, as
    `UTCDateTime` stores them), JSON text. The emails a person opened or clicked for the
    first time are marked so in the same transaction (see `mark_firsts`)."""
    if not hits:
        return
    _insert(conn, hits)
    mark_firsts(conn, hits, known=known)


def _insert(conn: Connection, hits: Sequence[StoredHit]) -> None:
    if conn.dialect.name == "postgresql":
        from psycopg.types.json import Jsonb

        from dripper.store.copy import copy_rows

        # The data of most hits is one of a few shapes: serialised once each (`_json`),
        # not once per row by the driver (~7 us a hit in the writer).
        copy_rows(
            conn,
            "tracking_events",
            _HIT_COLUMNS,
            (
                (h.outbox_id, h.customer_id, h.kind, h.at.astimezone(UTC), h.machine, h.url,
                 _agent(h.user_agent), Jsonb(h.data, _json), h.campaign, h.step, h.variant)
                for h in hits
            ),
        )  # fmt: skip
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.executemany(
        _SQLITE_INSERT,
        [
            (h.outbox_id, h.customer_id, h.kind, _sqlite_time(h.at), h.machine, h.url,
             _agent(h.user_agent), _json(h.data), h.campaign, h.step, h.variant)
            for h in hits
        ],
    )  # fmt: skip


# A one-click answer is a person's click on a link of the email.
_FIRSTS = {"open": "opened_at", "click": "clicked_at", "answer": "clicked_at"}
# An email whose first open and first click are both in the batch (a person's click sets
# both: the click and the open it implies) gets one statement for the two: one row version
# on PostgreSQL, one visit of the row on SQLite. A column already set is never moved.
_PG_FIRST = (
    "UPDATE outbox SET {0} = v.at FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
    "WHERE outbox.id = v.id AND outbox.{0} IS NULL"
)
_PG_BOTH = (
    "UPDATE outbox SET opened_at = coalesce(outbox.opened_at, v.opened), "
    "clicked_at = coalesce(outbox.clicked_at, v.clicked) "
    "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, opened, clicked) "
    "WHERE outbox.id = v.id AND (outbox.opened_at IS NULL OR outbox.clicked_at IS NULL)"
)
_SQLITE_FIRST = "UPDATE outbox SET {0} = ? WHERE id = ? AND {0} IS NULL"
_SQLITE_BOTH = (
    "UPDATE outbox SET opened_at = coalesce(opened_at, ?), clicked_at = coalesce(clicked_at, ?) "
    "WHERE id = ? AND (opened_at IS NULL OR clicked_at IS NULL)"
)
_BOTH = ("opened_at", "clicked_at")  # the order of _PG_BOTH's and _SQLITE_BOTH's arguments


def mark_firsts(
    conn: Connection, hits: Sequence[StoredHit], *, known: KnownFirsts | None = None
) -> None:
    """`outbox.opened_at` and `clicked_at`: when a person first opened or clicked each
    email (machines never). The stats count unique opens and clicks from these two
    columns of the sends table instead of a distinct count over every hit. `known`: the
    emails whose columns are already set (read in this transaction), left alone."""
    firsts: dict[int, dict[str, datetime]] = {}
    for h in hits:
        column = _FIRSTS.get(h.kind)
        if column is None or h.machine or h.outbox_id is None:
            continue
        if known is not None and h.outbox_id in known[column]:
            continue
        email = firsts.setdefault(h.outbox_id, {})
        seen = email.get(column)
        if seen is None or h.at < seen:
            email[column] = h.at
    # By the columns each email needs set: one statement per group.
    groups: dict[tuple[str, ...], list[int]] = {}
    for outbox_id in sorted(firsts):
        columns = tuple(c for c in _BOTH if c in firsts[outbox_id])  # in the statements' order
        groups.setdefault(columns, []).append(outbox_id)
    driver = conn.connection.driver_connection
    assert driver is not None
    postgresql = conn.dialect.name == "postgresql"
    for columns, ids in groups.items():
        times = [[firsts[i][column] for i in ids] for column in columns]
        if postgresql:
            sql = _PG_BOTH if len(columns) == 2 else _PG_FIRST.format(columns[0])
            utc = [[at.astimezone(UTC) for at in column] for column in times]
            with driver.cursor() as cursor:
                cursor.execute(sql, (ids, *utc))
        else:
            sql = _SQLITE_BOTH if len(columns) == 2 else _SQLITE_FIRST.format(columns[0])
            text = [[_sqlite_time(at) for at in column] for column in times]
            driver.executemany(sql, list(zip(*text, ids, strict=True)))


def _json(data: dict[str, Any]) -> str:
    """A hit's data as JSON text; most hits share a few shapes, each serialised once."""
    try:
        key = tuple(data.items())
        found = _JSON.get(key)
    except TypeError:  # a value that cannot be a key: serialise it as it is
        return json.dumps(data, separators=(",", ":"))
    if found is None:
        if len(_JSON) > 4096:
            _JSON.clear()
        found = _JSON[key] = json.dumps(data, separators=(",", ":"))
    return found


_JSON: dict[tuple[tuple[str, Any], ...], str] = {}


def _agent(user_agent: str | None) -> str | None:
    return (user_agent or "")[:500] or None


# A click's time is written up to four times (the click, the open it implies, the email's
# first open and first click): converted once.
@functools.lru_cache(maxsize=4096)
def _sqlite_time(at: datetime) -> str:
    """As SQLAlchemy's SQLite DATETIME stores it: naive UTC, microseconds always shown."""
    utc = at if at.tzinfo is UTC else at.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def recent_clicks(
    conn: Connection, outbox_ids: Iterable[int], *, since: datetime
) -> dict[int, dict[str, datetime]]:
    """The last click on each link of these emails since `since`, in one query: what the
    hit writer needs to judge a burst (whether a person opened an email, it reads from
    `outbox.opened_at` with the email itself, see `sent`)."""
    clicks: dict[int, dict[str, datetime]] = defaultdict(dict)
    ids = sorted(set(outbox_ids))
    if not ids:
        return clicks
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        with driver.cursor() as cursor:
            cursor.execute(_PG_CLICKS, (ids, since))
            found: Iterable[tuple[Any, ...]] = cursor.fetchall()
    else:
        found = []
        for part in chunks(ids, 500):
            marks = ", ".join("?" * len(part))
            found += driver.execute(
                _SQLITE_CLICKS.format(marks), (*part, _sqlite_time(since))
            ).fetchall()
    for outbox_id, at, url in found:
        clicks[outbox_id][url or ""] = _when(at) or since
    return clicks


# By the emails' index, never by (kind, at): "clicks of the last seconds" is all of them
# under load, and the planners' estimates for the newest rows are stale (measured: a
# batch's lookup took 62 ms on PostgreSQL through (kind, at), 1.8 ms through outbox_id).
# OFFSET 0 keeps PostgreSQL from merging the filter into the index choice; SQLite's unary
# `+` takes a term out of index use.
_PG_CLICKS = (
    "SELECT outbox_id, max(at), url FROM (SELECT outbox_id, kind, at, url "
    "FROM tracking_events WHERE outbox_id = ANY(%s) OFFSET 0) AS t "
    "WHERE kind = 'click' AND at >= %s GROUP BY outbox_id, url"
)
_SQLITE_CLICKS = (
    "SELECT outbox_id, max(at), url FROM tracking_events WHERE outbox_id IN ({}) "
    "AND +kind = 'click' AND +at >= ? GROUP BY outbox_id, url"
)


def _when(value: Any) -> datetime | None:
    """A time as the driver gives it (SQLite: naive UTC text), aware and in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _aware(value)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def is_opened(conn: Connection, outbox_id: int) -> bool:
    """A person's open of this email is stored (`outbox.opened_at`)."""
    return bool(
        conn.execute(
            sa.select(outbox.c.opened_at.is_not(None)).where(outbox.c.id == outbox_id)
        ).scalar_one_or_none()
    )


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
    # The email's first person's open and click, from what is still a person's.
    for column, kinds in (("opened_at", ("open",)), ("clicked_at", ("click", "answer"))):
        first = (
            sa.select(sa.func.min(t.at))
            .where(t.outbox_id == outbox_id, t.kind.in_(kinds), t.machine.is_(False))
            .scalar_subquery()
        )
        conn.execute(sa.update(outbox).where(outbox.c.id == outbox_id).values({column: first}))

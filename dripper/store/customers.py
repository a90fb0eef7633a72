"""Customers (added, merged, found), as functions of an open connection inside a transaction.

They take the connection rather than opening one, so later code (the planner) can record
an event and write the enrollments it causes in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from dripper.customers.addresses import address_hash
from dripper.customers.fields import merge_fields, merged_status
from dripper.customers.model import Customer, CustomerData, Status
from dripper.store import consent, rows
from dripper.store.engine import consent_default_of, dialect_of
from dripper.store.records import ConsentChange, UpsertCounts
from dripper.store.schema import customers, suppressions
from dripper.store.sql import chunks, insert_ignoring

_SUBSCRIBED, _UNSUBSCRIBED = Status.SUBSCRIBED.value, Status.UNSUBSCRIBED.value

# Columns an import reads to merge into an existing row.
_MERGE_COLUMNS = (
    customers.c.id,
    customers.c.email,
    customers.c.first_name,
    customers.c.last_name,
    customers.c.timezone,
    customers.c.locale,
    customers.c.tags,
    customers.c.attributes,
    customers.c.status,
    customers.c.unsubscribed_at,
    customers.c.updated_at,
)
_UPDATED = ("first_name", "last_name", "timezone", "locale", "tags", "attributes", "status")


def _bulk_update() -> sa.Update:
    # executemany over one statement: bind names must differ from column names.
    values: dict[str, Any] = {
        name: sa.bindparam(f"b_{name}", type_=customers.c[name].type)
        for name in (*_UPDATED, "unsubscribed_at", "updated_at")
    }
    return (
        sa.update(customers)
        .where(customers.c.id == sa.bindparam("b_id", type_=customers.c.id.type))
        .values(values)
    )


_BULK_UPDATE = _bulk_update()


def upsert_customers(
    conn: Connection,
    data: Sequence[CustomerData],
    *,
    now: datetime,
    again: Mapping[str, bool] | None = None,
    source: str = "",
) -> UpsertCounts:
    """Insert new customers and merge into existing ones, a chunk at a time (two SELECTs
    and two executemany statements per chunk). Addresses must be unique in `data`.

    An import calls this once per batch in one transaction; `again` names the addresses
    of this batch that an earlier batch of the same import may have written (a duplicate
    row further down the file), with whether that batch gave their tags. Such a row is
    merged as if both rows had been one (`CustomerData.merged_with`: tags united) and is
    not counted twice. A row the earlier batch wrote has `updated_at == now`; anything
    else is no repeat (the import's 64-bit hash of the address matched another's).

    A row that says something of marketing (the `marketing` column) and changes it, or
    makes a customer with it, is kept in the consent record (`imported`, `source`)."""
    inserted = updated = suppressed = 0
    for chunk in chunks(data):
        by_email = {row.email: row for row in chunk}
        blocked = _suppressed_since(conn, list(by_email))
        existing = _existing(conn, list(by_email))
        before = {email: row["status"] for email, row in existing.items()}
        new = [email for email in by_email if email not in existing]
        won = _insert(conn, [by_email[e] for e in new], blocked, now)
        inserted += won
        ours_merged = 0  # rows we inserted that are in `updates` too
        if won == len(new):
            suppressed += sum(1 for email in new if email in blocked)
        else:
            # Another process inserted some of these between our SELECT and INSERT. We
            # cannot tell which, so merge into all of them: for our own rows that changes
            # nothing, and the counts below come out exact.
            existing.update(_existing(conn, new))
            ours_merged = won
        merging = [email for email in by_email if email in existing]
        repeats = _repeats(again, merging, existing, now) if again else {}
        updates = [
            _merged(existing[email], by_email[email], blocked, now, repeats.get(email))
            for email in merging
        ]
        if updates:
            conn.execute(_BULK_UPDATE, updates)
        updated += len(updates) - ours_merged - len(repeats)
        suppressed += sum(
            1
            for email, u in zip(merging, updates, strict=True)
            if u["b_status"] == _UNSUBSCRIBED and email not in repeats
        )
        _record_statements(conn, by_email, before, now, source)
    return UpsertCounts(inserted=inserted, updated=updated, suppressed=suppressed)


def _record_statements(
    conn: Connection,
    by_email: Mapping[str, CustomerData],
    before: Mapping[str, str],
    now: datetime,
    source: str,
) -> None:
    """The consent record of the rows whose `marketing` said something and changed it."""
    stated = [e for e, row in by_email.items() if row.marketing is not None]
    if not stated:
        return
    c = customers.c
    query = sa.select(c.id, c.email, c.status).where(c.email.in_(stated))
    changes = [
        (cid, ConsentChange(now, "imported", status, source))
        for cid, email, status in conn.execute(query)
        if before.get(email) != status
    ]
    consent.record_many(conn, changes)


def _repeats(
    again: Mapping[str, bool], emails: list[str], existing: Mapping[str, RowMapping], now: datetime
) -> dict[str, bool]:
    """The addresses an earlier batch of this import really wrote, with whether it gave
    their tags (see `upsert_customers`)."""
    return {
        email: again[email]
        for email in emails
        if email in again and existing[email]["updated_at"] == now
    }


def _suppressed_since(conn: Connection, emails: list[str]) -> dict[str, datetime]:
    """The addresses among `emails` that are suppressed, with the time they were."""
    by_hash = {address_hash(email): email for email in emails}
    query = sa.select(suppressions.c.address_hash, suppressions.c.created_at).where(
        suppressions.c.address_hash.in_(list(by_hash))
    )
    return {by_hash[digest]: at for digest, at in conn.execute(query)}


def _existing(conn: Connection, emails: list[str]) -> dict[str, RowMapping]:
    query = sa.select(*_MERGE_COLUMNS).where(customers.c.email.in_(emails))
    return {row["email"]: row for row in conn.execute(query).mappings()}


def _insert(
    conn: Connection,
    data: list[CustomerData],
    blocked: Mapping[str, datetime],
    now: datetime,
) -> int:
    """Insert rows, skipping any address inserted meanwhile; returns how many were."""
    dialect = dialect_of(conn)
    if not data:
        return 0
    default = consent_default_of(conn)  # a customer no source made a statement about
    values = []
    for row in data:
        since = blocked.get(row.email)
        status = merged_status(default, row.marketing, blocked=since is not None)
        if since is None and status == _UNSUBSCRIBED:
            since = now  # the source says they unsubscribed
        values.append(
            {
                "email": row.email,
                "first_name": row.first_name or "",
                "last_name": row.last_name or "",
                "timezone": row.timezone,
                "locale": row.locale,
                "tags": list(row.tags or ()),
                "attributes": dict(row.attributes),
                "status": status,
                "unsubscribed_at": since,
                "purchases": 0,
                "total_spent_cents": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    # No RETURNING: with it SQLAlchemy sends one huge multi-VALUES statement that psycopg
    # re-parses in Python (about 50 us a row); plain executemany is pipelined and cheap.
    stmt = insert_ignoring(dialect, customers, ["email"])
    return conn.execute(stmt, values, execution_options={"preserve_rowcount": True}).rowcount


def _merged(
    old: RowMapping,
    new: CustomerData,
    blocked: Mapping[str, datetime],
    now: datetime,
    repeat: bool | None = None,
) -> dict[str, Any]:
    """The UPDATE parameters for one existing customer: given fields win, `None` keeps.
    `repeat` is set when this import wrote the row before: True if it gave its tags then,
    which these tags join rather than replace."""
    since = blocked.get(new.email)
    tags = list(old["tags"])
    if new.tags is not None:
        tags = list(dict.fromkeys([*tags, *new.tags])) if repeat else list(new.tags)
    # Never un-suppress: an import cannot resubscribe anyone.
    status = merged_status(old["status"], new.marketing, blocked=since is not None)
    unsubscribed = status == _UNSUBSCRIBED
    return {
        "b_id": old["id"],
        "b_first_name": _given(new.first_name, old["first_name"]),
        "b_last_name": _given(new.last_name, old["last_name"]),
        "b_timezone": _given(new.timezone, old["timezone"]),
        "b_locale": _given(new.locale, old["locale"]),
        "b_tags": tags,
        "b_attributes": {**old["attributes"], **new.attributes},
        "b_status": status,
        "b_unsubscribed_at": (old["unsubscribed_at"] or since or now) if unsubscribed else None,
        "b_updated_at": now,
    }


def _given(value: str | None, old: Any) -> Any:
    return old if value is None else value


def add_customer(
    conn: Connection, data: CustomerData, *, now: datetime, source: str = ""
) -> Customer:
    upsert_customers(conn, [data], now=now, source=source)
    customer = get_customer(conn, data.email)
    assert customer is not None
    return customer


def get_customer(conn: Connection, email: str) -> Customer | None:
    row = conn.execute(sa.select(customers).where(customers.c.email == email)).mappings().first()
    return None if row is None else rows.customer(row)


def customer_id(conn: Connection, email: str) -> int | None:
    return conn.execute(sa.select(customers.c.id).where(customers.c.email == email)).scalar()


def ensure_customer(conn: Connection, email: str, *, now: datetime) -> int:
    """The id of the customer with this address, created (`[consent] default` unless
    suppressed) if there is none."""
    found = customer_id(conn, email)
    if found is not None:
        return found
    blocked = _suppressed_since(conn, [email])
    _insert(conn, [CustomerData(email=email)], blocked, now)
    found = customer_id(conn, email)
    assert found is not None
    return found


def field_source(ext_id: str | None) -> str:
    """Who said what an event says of its customer: a shop's webhook (its events' ids
    name the shop) or the events API (the consent record's kind, DESIGN 13)."""
    if ext_id and ext_id.startswith(("shopify:", "woocommerce:")):
        return "shop"
    return "api"


def apply_fields(
    conn: Connection, cid: int, given: CustomerData, *, now: datetime, source: str = "api"
) -> None:
    """What an event says of its customer, merged into the row (see `merge_fields`); the
    row is locked first on PostgreSQL, so two events of one customer lose no tag. A change
    of marketing is kept in the consent record as `source` (`shop`, `api`)."""
    c = customers.c
    old = (
        conn.execute(
            sa.select(
                c.first_name, c.last_name, c.timezone, c.locale, c.tags, c.attributes, c.status
            )
            .where(c.id == cid)
            .with_for_update()
        )
        .mappings()
        .one()
    )
    changes = merge_fields(dict(old), given)
    if not changes:
        return
    if changes.get("status") == _UNSUBSCRIBED:
        changes["unsubscribed_at"] = now
    conn.execute(sa.update(customers).where(c.id == cid).values(**changes, updated_at=now))
    if "status" in changes:
        consent.record(conn, cid, ConsentChange(now, source, changes["status"], source))

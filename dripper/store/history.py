"""Order history (DESIGN 12: `dripper events import` without `--enroll`): past events
recorded as history. They update each customer (purchases, spend, first and last
purchase) but are never planned: no enrollment, no goal, no exit, no referral, so three
years of orders send nobody a thank-you.

Since nothing is planned, the whole file is written set-wise: the rows stream into a
temporary table as they are read (one COPY on PostgreSQL, so the server takes them in on
its own core while Python reads the next ones; executemany a few thousand at a time on
SQLite), and `finish` does the rest in a handful of statements: repeats within the file
and ids recorded before left out, the new customers added, the events inserted, and each
customer's purchases and refunds summed into one update. A million orders cost a few
statements, never one per order or per customer (bench/README.md, "Issue 22").

The unique index on `(type, ext_id)` decides duplicates on PostgreSQL even against an
event another transaction records meanwhile (its row is left out and not counted); on
SQLite the import holds the one write lock, so the look-up is exact.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.eventdata import NewEvent
from dripper.money import Money
from dripper.store.engine import Dialect, consent_default_of, dialect_of, json_dumps

STAGE = "_history"
_COLUMNS = ("seq", "email", "hash", "type", "at", "data", "ext_id", "cents", "currency", "ref")
_SQLITE_BATCH = 5000
_WORK_MEM = "256MB"
_WARNINGS_NAMED = 10  # customers named in the over-refund warning before a count


@dataclass
class Loaded:
    """What a history load recorded: events, duplicates left out (recorded before, or
    repeated in the file), and what was worth saying."""

    recorded: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)


class HistoryLoad:
    """One file's events, added as they are read, written by `finish`, all in the caller's
    transaction (all or nothing: a bad row rolls everything back)."""

    def __init__(self, conn: Connection, dialect: Dialect, *, now: datetime, currency: str) -> None:
        self.conn = conn
        self.dialect: Dialect = dialect
        self.now = now
        self.currency = currency
        self.rows = 0
        self._stack = ExitStack()
        self._copy: Any = None
        self._pending: list[dict[str, Any]] = []
        _create_stage(conn)

    def add(self, event: NewEvent, money: Money | None) -> None:
        """One event of the file (checked), in file order."""
        self.rows += 1
        given = event.data.get("currency")
        ref = event.data.get("order") if event.type == "refund" else None
        row = (
            self.rows,
            event.email,
            hashlib.sha256(event.email.encode()).hexdigest(),  # as customers.address_hash
            event.type,
            event.at,
            dict(event.data),
            event.id,
            money.cents if money is not None else 0,
            str(given).upper() if given else None,
            ref if isinstance(ref, str) and ref else None,
        )
        if self.dialect == "postgresql":
            if self._copy is None:
                self._copy = self._open_copy()
            self._copy.write_row(row)
            return
        self._pending.append(dict(zip(_COLUMNS, row, strict=True)))
        if len(self._pending) >= _SQLITE_BATCH:
            self._flush()

    def finish(self) -> Loaded:
        """Write what was added; returns what it recorded."""
        if self.dialect == "postgresql":
            self._stack.close()  # the COPY ends: every row is in the stage
        else:
            self._flush()
        loaded = Loaded()
        if not self.rows:
            return loaded
        conn, params = self.conn, {"now": self.now, "company": self.currency}
        if self.dialect == "postgresql":
            # Its plans join a million rows: statistics, and room for the hash joins and
            # sorts in memory (this transaction only; the server's default is 4 MB).
            conn.execute(sa.text(f"ANALYZE {STAGE}"))
            conn.execute(sa.text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
        else:  # SQLite's look-ups below are nested loops: they need the index
            conn.execute(sa.text(f"CREATE INDEX _history_keys ON {STAGE} (type, ext_id)"))
        # Repeats within the file: the first counts (the others are duplicates).
        if self.dialect == "postgresql":
            repeats = (
                f"DELETE FROM {STAGE} h USING (SELECT type, ext_id, min(seq) AS first "  # noqa: S608
                f"FROM {STAGE} WHERE ext_id IS NOT NULL GROUP BY type, ext_id "
                "HAVING count(*) > 1) d WHERE h.type = d.type AND h.ext_id = d.ext_id "
                "AND h.seq > d.first"
            )
        else:
            repeats = (
                f"DELETE FROM {STAGE} WHERE ext_id IS NOT NULL AND seq > "  # noqa: S608
                f"(SELECT min(o.seq) FROM {STAGE} o WHERE o.type = {STAGE}.type "
                f"AND o.ext_id = {STAGE}.ext_id)"
            )
        conn.execute(sa.text(repeats))
        # Recorded before (the unique index's look-up, once per id).
        conn.execute(
            sa.text(
                f"DELETE FROM {STAGE} WHERE ext_id IS NOT NULL AND EXISTS (SELECT 1 FROM "  # noqa: S608
                f"events e WHERE e.type = {STAGE}.type AND e.ext_id = {STAGE}.ext_id)"
            )
        )
        _new_customers(conn, params)
        _refund_currencies(conn)
        loaded.warnings += _unmatched_refunds(conn)
        if self.dialect == "postgresql":
            loaded.recorded = _insert_postgresql(conn, params)
        else:
            loaded.recorded = _insert_sqlite(conn, params)
        loaded.warnings += _over_refunded(conn)
        conn.execute(sa.text(_UPDATE).bindparams(sa.bindparam("now", params["now"], type_=_UTC)))
        loaded.duplicates = self.rows - loaded.recorded
        if self.dialect == "sqlite":
            # No copy of the file's addresses left on the connection once written (forget
            # promises none); PostgreSQL's temporary tables go at commit.
            conn.execute(sa.text(f"DROP TABLE {STAGE}"))
            conn.execute(sa.text(f"DROP TABLE {SUMS}"))
        return loaded

    def close(self) -> None:
        """Give up (a bad row): the caller's transaction rolls everything back."""
        self._stack.close()

    # --- streaming ------------------------------------------------------------------------

    def _open_copy(self) -> Any:
        from dripper.store.copy import column_types

        types = column_types(self.conn, STAGE, _COLUMNS)  # before the COPY holds the line
        driver = self.conn.connection.driver_connection
        assert driver is not None
        cursor = self._stack.enter_context(driver.cursor())
        copy = self._stack.enter_context(
            cursor.copy(f"COPY {STAGE} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)")
        )
        copy.set_types(types)
        return copy

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = [{**r, "data": json_dumps(r["data"])} for r in self._pending]
        self.conn.execute(
            sa.text(
                f"INSERT INTO {STAGE} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608
                f"({', '.join(':' + c for c in _COLUMNS)})"
            ).bindparams(sa.bindparam("at", type_=_UTC)),
            rows,
        )
        self._pending = []


def _utc_type() -> Any:
    from dripper.store.types import UTCDateTime

    return UTCDateTime()


_UTC = _utc_type()


def _create_stage(conn: Connection) -> None:
    dialect = dialect_of(conn)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {STAGE}"))
    if dialect == "postgresql":
        types = (
            "seq bigint, email text, hash text, type text, at timestamptz, data jsonb, "
            "ext_id text, cents bigint, currency text, ref text"
        )
        conn.execute(sa.text(f"CREATE TEMP TABLE {STAGE} ({types}) ON COMMIT DROP"))
    else:
        types = (
            "seq INTEGER, email TEXT, hash TEXT, type TEXT, at TEXT, data TEXT, "
            "ext_id TEXT, cents INTEGER, currency TEXT, ref TEXT"
        )
        conn.execute(sa.text(f"CREATE TEMP TABLE {STAGE} ({types})"))


def _new_customers(conn: Connection, params: dict[str, Any]) -> None:
    """The file's addresses dripper does not know, as customers: `[consent] default` unless
    the address is suppressed (a forgotten or bounced address stays blocked, DESIGN 7)."""
    conn.execute(
        sa.text(
            "INSERT INTO customers (email, first_name, last_name, tags, attributes, status, "  # noqa: S608
            "unsubscribed_at, purchases, total_spent_cents, created_at, updated_at) "
            "SELECT n.email, '', '', '[]', '{}', "
            "CASE WHEN s.address_hash IS NULL THEN :default ELSE 'unsubscribed' END, "
            "s.created_at, 0, 0, :now, :now "
            f"FROM (SELECT email, min(hash) AS hash FROM {STAGE} GROUP BY email) n "
            "LEFT JOIN suppressions s ON s.address_hash = n.hash "
            "WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.email = n.email) "
            "ON CONFLICT (email) DO NOTHING"
        ).bindparams(
            sa.bindparam("now", params["now"], type_=_UTC),
            sa.bindparam("default", consent_default_of(conn)),
        )
    )


def _refund_currencies(conn: Connection) -> None:
    """A refund that gives no currency is in its purchase's (in the file, or recorded
    before), else the company's. Joins, not a look-up per refund: on PostgreSQL the stage
    has no index (hash joins), on SQLite the join uses the stage's."""
    # Repeats are gone from the stage: at most one purchase per id in the file.
    dialect = dialect_of(conn)
    conn.execute(
        sa.text(
            f"UPDATE {STAGE} SET currency = p.currency FROM {STAGE} p "  # noqa: S608
            f"WHERE {STAGE}.type = 'refund' AND {STAGE}.currency IS NULL "
            f"AND {STAGE}.ref IS NOT NULL AND p.type = 'purchase' AND p.ext_id = {STAGE}.ref "
            f"AND p.email = {STAGE}.email"
        )
    )
    given = (
        "upper(e.data ->> 'currency')"
        if dialect == "postgresql"
        else ("upper(json_extract(e.data, '$.currency'))")
    )
    conn.execute(
        sa.text(
            f"UPDATE {STAGE} SET currency = p.currency FROM (SELECT c.email, e.ext_id, "  # noqa: S608
            f"{given} AS currency FROM events e JOIN customers c ON c.id = e.customer_id "
            f"WHERE e.type = 'purchase' AND e.ext_id IN (SELECT ref FROM {STAGE} "
            "WHERE type = 'refund' AND currency IS NULL AND ref IS NOT NULL)) p "
            f"WHERE {STAGE}.type = 'refund' AND {STAGE}.currency IS NULL "
            f"AND p.ext_id = {STAGE}.ref AND p.email = {STAGE}.email"
        )
    )


# Each customer's sums over the rows recorded (`_kept`: on PostgreSQL the stage's rows
# the insert really took, on SQLite all of them), once: for the over-refund warning and
# the update. Only money in the company's currency adds to total_spent.
SUMS = "_history_sums"
_SUMS = f"""
CREATE TEMP TABLE {SUMS} AS
SELECT c.id AS cid,
       count(CASE WHEN k.type = 'purchase' THEN 1 END) AS n,
       coalesce(sum(CASE WHEN k.type = 'purchase' AND k.counts THEN k.cents END), 0) AS spent,
       coalesce(sum(CASE WHEN k.type = 'refund' AND k.counts THEN k.cents END), 0) AS back,
       min(CASE WHEN k.type = 'purchase' THEN k.at END) AS first,
       max(CASE WHEN k.type = 'purchase' THEN k.at END) AS last
FROM (SELECT email, type, cents, at, coalesce(currency, :company) = :company AS counts
      FROM {{kept}}) k
JOIN customers c ON c.email = k.email
GROUP BY c.id
"""  # noqa: S608 (no input in it: `kept` is one of two subqueries)


def _sums(conn: Connection, kept: str, params: dict[str, Any]) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {SUMS}"))
    statement = _SUMS.format(kept=kept)
    if dialect_of(conn) == "postgresql":  # gone at commit, like the stage
        statement = statement.replace("AS\nSELECT", "ON COMMIT DROP AS\nSELECT", 1)
    conn.execute(sa.text(statement), {"company": params["company"]})


def _unmatched_refunds(conn: Connection) -> list[str]:
    """Refunds naming an order with no purchase of that customer, in the file or recorded
    before: they still lower total_spent, and that is said (once for all of them)."""
    refs = list(
        conn.execute(
            sa.text(
                f"SELECT h.ref FROM {STAGE} h WHERE h.type = 'refund' AND h.ref IS NOT NULL "  # noqa: S608
                f"AND NOT EXISTS (SELECT 1 FROM {STAGE} p WHERE p.type = 'purchase' "
                "AND p.ext_id = h.ref AND p.email = h.email) "
                "AND NOT EXISTS (SELECT 1 FROM events e JOIN customers c ON c.id = e.customer_id "
                "WHERE e.type = 'purchase' AND e.ext_id = h.ref AND c.email = h.email) "
                "ORDER BY h.seq"
            )
        ).scalars()
    )
    if not refs:
        return []
    named = ", ".join(repr(r) for r in refs[:_WARNINGS_NAMED])
    more = f" and {len(refs) - _WARNINGS_NAMED} more" if len(refs) > _WARNINGS_NAMED else ""
    return [
        f"{len(refs)} refund(s) name an order with no purchase with that id for their "
        f"customer ({named}{more}): total_spent is lowered; no campaign's revenue changes"
    ]


def _over_refunded(conn: Connection) -> list[str]:
    """The customers whose refunds would take total_spent below 0: it stops at 0, and
    that is said (once for all of them)."""
    rows = conn.execute(
        sa.text(
            f"SELECT c.email FROM {SUMS} s JOIN customers c ON c.id = s.cid "  # noqa: S608
            "WHERE c.total_spent_cents + s.spent - s.back < 0 ORDER BY c.email"
        )
    ).scalars()
    emails = list(rows)
    if not emails:
        return []
    named = ", ".join(emails[:_WARNINGS_NAMED])
    more = f" and {len(emails) - _WARNINGS_NAMED} more" if len(emails) > _WARNINGS_NAMED else ""
    return [
        f"{len(emails)} customer(s) were refunded more than they spent ({named}{more}): "
        "their total_spent is 0"
    ]


_UPDATE = f"""
UPDATE customers SET
  purchases = customers.purchases + s.n,
  total_spent_cents = CASE WHEN customers.total_spent_cents + s.spent - s.back > 0
                           THEN customers.total_spent_cents + s.spent - s.back ELSE 0 END,
  first_purchase_at = CASE WHEN s.first IS NOT NULL AND (customers.first_purchase_at IS NULL
                           OR s.first < customers.first_purchase_at)
                           THEN s.first ELSE customers.first_purchase_at END,
  last_purchase_at = CASE WHEN s.last IS NOT NULL AND (customers.last_purchase_at IS NULL
                          OR s.last > customers.last_purchase_at)
                          THEN s.last ELSE customers.last_purchase_at END,
  updated_at = :now
FROM {SUMS} s
WHERE customers.id = s.cid
"""  # noqa: S608 (no input in it)

_INSERT = (
    "INSERT INTO events (customer_id, type, at, data, recorded_at, ext_id) "  # noqa: S608
    f"SELECT c.id, h.type, h.at, h.data, :now, h.ext_id FROM {STAGE} h "
    "JOIN customers c ON c.email = h.email ORDER BY h.seq"
)


def _insert_postgresql(conn: Connection, params: dict[str, Any]) -> int:
    """The events, then the sums over the rows the insert really took: one that another
    transaction recorded meanwhile (after the stage's look-up) is left out of both."""
    kept = "_history_kept"
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {kept}"))
    conn.execute(sa.text(f"CREATE TEMP TABLE {kept} (type text, ext_id text) ON COMMIT DROP"))
    conn.execute(
        sa.text(
            f"WITH ins AS ({_INSERT} ON CONFLICT (type, ext_id) DO NOTHING "  # noqa: S608
            f"RETURNING type, ext_id) INSERT INTO {kept} SELECT type, ext_id FROM ins "
            "WHERE ext_id IS NOT NULL"
        ).bindparams(sa.bindparam("now", params["now"], type_=_UTC))
    )
    rows = (
        f"(SELECT h.* FROM {STAGE} h WHERE h.ext_id IS NULL UNION ALL "  # noqa: S608
        f"SELECT h.* FROM {kept} k JOIN {STAGE} h ON h.type = k.type AND h.ext_id = k.ext_id) "
        "AS kept"
    )
    _sums(conn, rows, params)
    recorded = conn.execute(
        sa.text(
            f"SELECT (SELECT count(*) FROM {STAGE} WHERE ext_id IS NULL) + "  # noqa: S608
            f"(SELECT count(*) FROM {kept})"
        )
    ).scalar_one()
    return int(recorded)


def _insert_sqlite(conn: Connection, params: dict[str, Any]) -> int:
    """SQLite (one writer: every row left in the stage is new): the events, then the
    sums over the stage."""
    inserted = conn.execute(
        sa.text(_INSERT).bindparams(sa.bindparam("now", params["now"], type_=_UTC)),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    _sums(conn, f"{STAGE} AS kept", params)
    return int(inserted)

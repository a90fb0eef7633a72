"""The `Store`: dripper's database, one short transaction per call.

Each method opens its own transaction. Later code that must do several things atomically
(record an event and the enrollments it causes) uses `transaction()` and the functions of
`dripper.store.customers` and `dripper.store.privacy`, which take the connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dripper.customers.model import Customer, CustomerData
from dripper.store import customers as customer_ops
from dripper.store import migrate, privacy, recording, rows, sheet, tasks
from dripper.store.consent import history as consent_history
from dripper.store.engine import BEGIN_MODE, CONSENT_DEFAULT, Dialect, create
from dripper.store.records import (
    EventRecord,
    SuppressionReason,
    SuppressionRecord,
    Timeline,
    UpsertCounts,
)
from dripper.store.schema import customers, enrollments, events, outbox, tracking_events

if TYPE_CHECKING:
    from dripper.store.history import HistoryLoad


def open_store(url: str, *, consent_default: str = "subscribed") -> Store:
    """Connect to the database at `url` (sqlite:///PATH or postgresql+psycopg://...).
    Raises StoreError with one line if the URL is unusable or the database unreachable.
    `consent_default`: `[consent] default`, the marketing of a customer created without
    a statement (DESIGN 13)."""
    engine, dialect = create(url)
    return Store(engine, dialect, consent_default=consent_default)


class Store:
    def __init__(
        self, engine: Engine, dialect: Dialect, *, consent_default: str = "subscribed"
    ) -> None:
        self._engine = engine
        self._dialect: Dialect = dialect
        self.consent_default = consent_default

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed on success. On SQLite it takes the write lock at
        BEGIN, so a read-then-write never fails half-way on a lock another process took."""
        with self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
            conn.execution_options(**{CONSENT_DEFAULT: self.consent_default})
            with conn.begin():
                yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot for several queries."""
        with self._engine.connect() as conn:
            if self._dialect == "postgresql":
                # READ COMMITTED would give each query of a timeline its own snapshot.
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def readers(self, count: int, *, scans: bool = False) -> Iterator[list[Connection]]:
        """`count` read-only connections that see one and the same snapshot, for reports
        whose queries run side by side (PostgreSQL: the first exports its snapshot, the
        others adopt it). SQLite has one reader per file worth having: one connection,
        given `count` times, to be used one query after another (`side_by_side` says
        which). `scans`: big scans, for which PostgreSQL's JIT compiles each query at
        a cost (~70 ms a query, measured) larger than it saves on a few million rows."""
        if self._dialect != "postgresql" or count < 2:
            with self.reading() as conn:
                if scans and self._dialect == "postgresql":
                    conn.exec_driver_sql("SET LOCAL jit = off")
                yield [conn] * count
            return
        with self.reading() as first:
            snapshot = first.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            with ExitStack() as stack:
                others = []
                for _ in range(count - 1):
                    conn = stack.enter_context(self.reading())
                    # The first statement of the transaction: before it nothing is read.
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    others.append(conn)
                if scans:
                    for conn in (first, *others):
                        conn.exec_driver_sql("SET LOCAL jit = off")
                yield [first, *others]

    @property
    def concurrent_writers(self) -> bool:
        """Whether several connections can write at once (PostgreSQL): work may then be
        split between threads or daemons; SQLite has one writer, and one connection is
        shared."""
        return self._dialect == "postgresql"

    def trigger_filter(self, *, when: str | None = None, date: str | None = None) -> Any:
        """The SQL that narrows a trigger scan to the customers who can match (a `when`
        condition in the compilable subset, or a `date:` expression); None: every
        customer (store/customer_filter.py)."""
        from dripper.store.customer_filter import date_filter, when_filter

        if when is not None:
            return when_filter(when, self._dialect)
        if date is not None:
            return date_filter(date, self._dialect)
        return None

    @property
    def side_by_side(self) -> bool:
        """Whether `readers` gives connections that can be read at the same time."""
        return self._dialect == "postgresql"

    def ping(self) -> None:
        """One round trip to the database (a health check); raises when it is down."""
        with self.reading() as conn:
            conn.exec_driver_sql("SELECT 1")

    @property
    def database_file(self) -> Path | None:
        """The SQLite file (one daemon at a time may send from it); None on PostgreSQL
        or for an in-memory database."""
        database = self._engine.url.database
        if self._dialect != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    def reserve_send_slots(self, block: int, rate: float) -> float:
        """`block` sends of the rate shared by every daemon on this database: seconds
        from now until the first of them (store/throttle.py)."""
        from dripper.store import throttle

        with self.transaction() as conn:
            return throttle.reserve(conn, block, rate)

    def copy_into(self, target: Store) -> None:
        """Every table, copied into `target` (a fresh database of the current schema),
        parents before children, a few thousand rows at a time."""
        from dripper.store.schema import metadata

        for table in metadata.sorted_tables:
            with self.reading() as src, target.transaction() as dst:
                result = src.execution_options(yield_per=2000).execute(sa.select(table))
                for chunk in result.mappings().partitions(2000):
                    dst.execute(sa.insert(table), [dict(row) for row in chunk])

    # -- schema -------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        return migrate.current_revision(self._engine)

    def upgrade(self) -> None:
        """Apply every pending migration (`dripper db upgrade`)."""
        migrate.upgrade(self._engine, self._dialect)

    def ensure_schema(self) -> None:
        """What every command calls first: cheap when the schema is current."""
        migrate.ensure_schema(self._engine, self._dialect)

    # -- customers ----------------------------------------------------------------------

    def upsert_customers(self, data: Sequence[CustomerData], *, now: datetime) -> UpsertCounts:
        """Insert or merge many customers (unique addresses) in one transaction."""
        with self.transaction() as conn:
            return customer_ops.upsert_customers(conn, data, now=now)

    def upsert_customers_in(
        self,
        conn: Connection,
        data: Sequence[CustomerData],
        *,
        now: datetime,
        again: Mapping[str, bool] | None = None,
        source: str = "",
    ) -> UpsertCounts:
        """`upsert_customers` in the caller's transaction (an import: all or nothing).
        `source` names the file in the consent record."""
        return customer_ops.upsert_customers(conn, data, now=now, again=again, source=source)

    def history_load(self, conn: Connection, *, now: datetime, currency: str) -> HistoryLoad:
        """An order history's events, added one by one and written set-wise in the
        caller's transaction (store/history.py)."""
        from dripper.store.history import HistoryLoad

        return HistoryLoad(conn, self._dialect, now=now, currency=currency)

    def add_customer(self, data: CustomerData, *, now: datetime) -> Customer:
        with self.transaction() as conn:
            return customer_ops.add_customer(conn, data, now=now, source="customers add")

    def add_note(self, email: str, text: str, *, now: datetime, source: str = "") -> bool:
        """`customers note`: a dated note on the sheet; False when there is no such customer."""
        from dripper.store import sheet

        with self.transaction() as conn:
            return sheet.add_note(conn, email, text, now=now, source=source)

    def change_tags(
        self, email: str, add: Sequence[str], remove: Sequence[str], *, now: datetime
    ) -> Customer | None:
        """`customers tag`: tags added and removed; None when there is no such customer."""
        from dripper.store import sheet

        with self.transaction() as conn:
            return sheet.change_tags(conn, email, add, remove, now=now)

    def get_customer(self, email: str) -> Customer | None:
        with self.reading() as conn:
            return customer_ops.get_customer(conn, email)

    def count_customers(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one())

    def iter_customers(self, batch_size: int = 1000) -> Iterator[Customer]:
        """Every customer in id order, one batch in memory at a time. Each batch is its own
        short read, so a long export never holds a transaction open."""
        after = 0
        while True:
            query = (
                sa.select(customers)
                .where(customers.c.id > after)
                .order_by(customers.c.id)
                .limit(batch_size)
            )
            with self.reading() as conn:
                batch = [rows.customer(row) for row in conn.execute(query).mappings()]
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].id

    # -- events -------------------------------------------------------------------------

    def record_event(
        self,
        email: str,
        type: str,
        *,
        at: datetime,
        data: Mapping[str, Any],
        now: datetime,
    ) -> tuple[Customer, EventRecord]:
        """Store an event without an id (creating the customer if new); a purchase updates
        purchases, total spent and the first/last purchase times. InputError for a bad
        amount. (The planner records events with ids, fields and what they cause.)"""
        with self.transaction() as conn:
            recorded = recording.record_event(conn, email, type, at=at, data=data, now=now)
            assert recorded is not None  # no id, so never a duplicate
            return recorded.customer, recorded.event

    def events_for(self, customer_id: int) -> list[EventRecord]:
        with self.reading() as conn:
            return recording.events_for(conn, customer_id)

    # -- unsubscribes, suppressions, forgetting -------------------------------------------

    def unsubscribe(
        self,
        email: str,
        *,
        now: datetime,
        reason: SuppressionReason | str = SuppressionReason.UNSUBSCRIBED,
    ) -> bool:
        """Unsubscribe and suppress a customer, cancelling their planned sends. False if
        there is no such customer; calling it again changes nothing."""
        with self.transaction() as conn:
            return privacy.unsubscribe(conn, email, reason=SuppressionReason(reason), now=now)

    def suppress(self, email: str, *, reason: SuppressionReason | str, now: datetime) -> bool:
        """Suppress an address, customer or not (a customer is also unsubscribed). True if
        the address belongs to a customer."""
        with self.transaction() as conn:
            return privacy.suppress(conn, email, reason=SuppressionReason(reason), now=now)

    def suppression_for(self, email: str) -> SuppressionRecord | None:
        with self.reading() as conn:
            return privacy.suppression_for(conn, email)

    def suppressed_hashes(self, hashes: Iterable[str]) -> set[str]:
        """Which of these address hashes are suppressed."""
        with self.reading() as conn:
            return privacy.suppressed_hashes(conn, hashes)

    def forget(self, email: str, *, now: datetime) -> bool:
        """Erase the customer and everything about them, keeping only the suppressed hash.
        False if nothing was stored about the address. On SQLite the write-ahead log is
        checkpointed and truncated after it (the pages are zeroed: `secure_delete`), so
        no copy of the rows stays in the files; a reader holding an old snapshot can put
        that off until the next checkpoint, which SQLite makes by itself."""
        with self.transaction() as conn:
            erased = privacy.forget(conn, email, now=now)
        if erased and self._dialect == "sqlite":
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased

    def message_ids_of(self, email: str) -> list[str]:
        """The Message-IDs of every email given to this customer (what the file
        transport named its files by)."""
        with self.reading() as conn:
            return privacy.message_ids_of(conn, email)

    # -- the customer's story -------------------------------------------------------------

    def consent_latest(self, customer_ids: Sequence[int]) -> dict[int, tuple[datetime, str]]:
        """Each customer's last change of consent: (when, "kind:source")."""
        from dripper.store import consent

        with self.reading() as conn:
            return consent.latest(conn, customer_ids)

    def timeline(self, email: str) -> Timeline | None:
        with self.reading() as conn:
            customer = customer_ops.get_customer(conn, email)
            if customer is None:
                return None
            cid = customer.id

            def fetch(table: sa.Table, *order: sa.ColumnElement[Any]) -> list[Any]:
                query = sa.select(table).where(table.c.customer_id == cid).order_by(*order)
                return list(conn.execute(query).mappings())

            return Timeline(
                customer=customer,
                events=tuple(map(rows.event, fetch(events, events.c.at, events.c.id))),
                enrollments=tuple(
                    map(
                        rows.enrollment,
                        fetch(enrollments, enrollments.c.enrolled_at, enrollments.c.id),
                    )
                ),
                outbox=tuple(map(rows.outbox, fetch(outbox, outbox.c.due_at, outbox.c.id))),
                tracking=tuple(map(rows.tracking, conn.execute(_tracking_of(cid)).mappings())),
                suppression=privacy.suppression_for(conn, email),
                consent=tuple(consent_history(conn, cid)),
                notes=tuple(sheet.notes_of(conn, cid)),
                tasks=tuple(tasks.of_customer(conn, cid)),
            )


def _tracking_of(customer_id: int) -> sa.Select[Any]:
    """Tracking rows of a customer: recorded against them or against one of their sends."""
    theirs = sa.select(outbox.c.id).where(outbox.c.customer_id == customer_id)
    return (
        sa.select(tracking_events)
        .where(
            sa.or_(
                # Tied to no email (a referral visit): by the customer's partial index.
                sa.and_(
                    tracking_events.c.customer_id == customer_id,
                    tracking_events.c.outbox_id.is_(None),
                ),
                tracking_events.c.outbox_id.in_(theirs.scalar_subquery()),
            )
        )
        .order_by(tracking_events.c.at, tracking_events.c.id)
    )

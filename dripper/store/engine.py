"""Turning a database URL into a working SQLAlchemy engine, or one clear error.

SQLite: WAL, a busy timeout, foreign keys, and SQLAlchemy (not the sqlite3 module) in
charge of BEGIN, so that DDL is transactional and a write transaction can start with
`BEGIN IMMEDIATE` (taking the write lock up front instead of failing half-way when another
process wrote first). PostgreSQL: psycopg 3.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine

from dripper.errors import StoreError

Dialect = Literal["sqlite", "postgresql"]

# Execution option of a store's write transactions: `[consent] default`, the marketing a
# customer created without a statement gets (read by `consent_default_of`).
CONSENT_DEFAULT = "dripper_consent_default"

# Execution option read by the BEGIN hook: a write transaction on SQLite begins IMMEDIATE.
BEGIN_MODE = "dripper_sqlite_begin"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    # Deleted content is overwritten, not left in free pages: `forget` means forget
    # (issue 23); with the WAL checkpointed after it, no copy stays in either file.
    "PRAGMA secure_delete=ON",
)


def create(url_text: str) -> tuple[Engine, Dialect]:
    """An engine for `url_text`, with one connection made to prove the database is usable."""
    url = parse_url(url_text)
    shown = url.render_as_string(hide_password=True)
    dialect: Dialect = "sqlite" if url.drivername.startswith("sqlite") else "postgresql"
    try:
        engine = _sqlite_engine(url) if dialect == "sqlite" else _postgres_engine(url)
    except (ImportError, exc.NoSuchModuleError):
        raise StoreError(
            f"database {shown}: PostgreSQL needs psycopg: pip install 'dripper-mail[postgres]'"
        ) from None
    except exc.ArgumentError as error:
        raise StoreError(f"database {shown}: {_first_line(error, url)}") from None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except exc.DBAPIError as error:
        engine.dispose()
        from dripper.store.outage import DatabaseUnavailable, is_outage

        message = f"cannot open database {shown}: {_first_line(error, url)}"
        if is_outage(error) and not _misplaced(error, dialect):
            raise DatabaseUnavailable(message) from None
        raise StoreError(message) from None
    return engine, dialect


def _misplaced(error: BaseException, dialect: Dialect) -> bool:
    """SQLite's "unable to open database file": a folder that does not exist, a path
    that is wrong; waiting cures neither (a locked, full or read-only file is cured)."""
    return dialect == "sqlite" and "unable to open database file" in str(error)


def parse_url(url_text: str) -> URL:
    """Parse and check a URL: SQLite (pysqlite) or PostgreSQL (mapped onto psycopg 3)."""
    try:
        url = sa.make_url(url_text)
    except exc.ArgumentError:
        # Not even a URL: show it only if it cannot hold a password.
        shown = url_text if "@" not in url_text else "(unparsable URL)"
        raise StoreError(
            f"bad database URL {shown}: expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    # Judge the scheme as text: asking SQLAlchemy would try to load an unknown dialect.
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"database {url.render_as_string(hide_password=True)}: dripper works with "
        "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: event data from the Python API may hold a Decimal amount or a
    datetime; they are stored as a decimal string and ISO 8601 text."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} {value!r} as JSON")


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": json_dumps}
    if url.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        kwargs.update(poolclass=sa.StaticPool, connect_args={"check_same_thread": False})
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module: it skips it for DDL and SELECT.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: URL) -> Engine:
    # pre_ping: a daemon outlives server restarts and idle-connection reapers.
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=json_dumps)


def _first_line(error: BaseException, url: URL) -> str:
    """The driver's own words, first line only, never with the password in them."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def dialect_of(conn: Connection) -> Dialect:
    """The database a connection speaks to: each store function asks its connection, so
    no caller outside the store passes or reads the dialect (issue 25)."""
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


def consent_default_of(conn: Connection) -> str:
    """`[consent] default` of the store this transaction belongs to (DESIGN 13)."""
    return str(conn.get_execution_options().get(CONSENT_DEFAULT, "subscribed"))

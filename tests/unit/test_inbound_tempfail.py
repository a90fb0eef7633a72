"""Which failures of taking in a message are temporary (`services.inbound.temporary`): the
ones after which `dripper inbound` exits 75 (EX_TEMPFAIL) and the MTA keeps the message.
The CLI tests cause the real ones (a lock, a read-only file, a full database, a closed
port); here each kind of error the drivers raise, as SQLAlchemy hands it on or raw."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa

from dripper.errors import ConfigError, InputError, StoreError
from dripper.services.inbound import temporary


def wrapped(error: Exception, kind: type[sa.exc.DBAPIError] = sa.exc.DBAPIError) -> Exception:
    """The driver's error as SQLAlchemy raises it (the class it picks from the driver's)."""
    return kind("INSERT INTO inbound_messages ...", {}, error)


OPERATIONAL = sa.exc.OperationalError


@pytest.mark.parametrize(
    "error",
    [
        StoreError("cannot open database postgresql+psycopg://x@127.0.0.1:1/shop"),
        wrapped(sqlite3.OperationalError("database is locked"), OPERATIONAL),
        wrapped(sqlite3.OperationalError("database or disk is full"), OPERATIONAL),
        wrapped(sqlite3.OperationalError("attempt to write a readonly database"), OPERATIONAL),
        wrapped(psycopg.OperationalError("server closed the connection"), OPERATIONAL),
        wrapped(psycopg.InterfaceError("the connection is closed"), sa.exc.InterfaceError),
        wrapped(psycopg.errors.ReadOnlySqlTransaction("read-only"), sa.exc.InternalError),
        sa.exc.TimeoutError("QueuePool limit reached"),
        sqlite3.OperationalError("database is locked"),
        psycopg.OperationalError("connection failed"),
        psycopg.errors.DiskFull("could not extend file"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    ],
    ids=lambda e: f"{type(e).__name__}: {str(e).splitlines()[0][:40]}",
)
def test_an_outage_is_temporary(error: Exception) -> None:
    """Unreachable, gone away, locked, full, read-only, a standby: try again later."""
    assert temporary(error)


def test_a_lost_connection_is_temporary_whatever_its_class() -> None:
    """An error SQLAlchemy marks as having invalidated the connection is an outage."""
    error = sa.exc.DBAPIError("SELECT 1", {}, Exception("EOF"), connection_invalidated=True)
    assert temporary(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        ValueError("naive datetime"),
        InputError("empty: not a message"),
        ConfigError("config.toml:3: unknown key"),
        wrapped(psycopg.errors.UniqueViolation("duplicate key"), sa.exc.IntegrityError),
        wrapped(sqlite3.IntegrityError("NOT NULL constraint failed"), sa.exc.IntegrityError),
        wrapped(psycopg.errors.UndefinedColumn("column does not exist"), sa.exc.ProgrammingError),
    ],
    ids=lambda e: type(e).__name__,
)
def test_anything_else_is_not(error: Exception) -> None:
    """A bug or bad input is not cured by waiting: never held back as temporary."""
    assert not temporary(error)

"""Which failures of the database are an outage: trying again later cures them (issue 23).

The daemon, `dripper inbound` and `serve` ride out an outage (the server stopped or
restarting, a connection cut, SQLite locked past its busy timeout, a full disk, a
read-only file, a standby after a failover) instead of dying on it: a log line and a
retry, never a traceback. Anything else (a bug, bad data, a missing table) is not one.
"""

from __future__ import annotations

import sqlite3
import sys

import sqlalchemy as sa

from dripper.errors import StoreError

# SQLSTATE classes of PostgreSQL that pass: connection exceptions, insufficient resources
# (disk full, out of memory), operator intervention (shutdown, starting up), transaction
# rollback (serialization, deadlock); and a read-only transaction (a standby).
_TEMPORARY_SQLSTATES = ("08", "53", "57", "40", "25006")


class DatabaseUnavailable(StoreError):
    """The database could not be opened for a reason time may cure (see `is_outage`)."""


def is_outage(exc: BaseException) -> bool:
    """A failure that trying again later can cure."""
    if isinstance(exc, DatabaseUnavailable | sa.exc.TimeoutError):  # opening; pool empty
        return True
    driver: BaseException | None = exc
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            return True
        driver = exc.orig
    if isinstance(driver, sqlite3.OperationalError):  # locked, busy, full, readonly, I/O
        return True
    psycopg = sys.modules.get("psycopg")  # raised by the driver itself (COPY, LISTEN)
    if psycopg is not None and isinstance(
        driver, psycopg.OperationalError | psycopg.InterfaceError
    ):
        return True
    sqlstate = getattr(driver, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_TEMPORARY_SQLSTATES)


def describe(exc: BaseException) -> str:
    """The driver's own words, one line, short (a log line, never a traceback)."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    text = lines[0] if lines else type(original).__name__
    return text[:200]


class Backoff:
    """Waits between tries: 1 s, 2 s, 4 s, ... up to `longest` (a minute), so a long
    outage costs a try a minute and a short one is noticed within seconds."""

    def __init__(self, first: float = 1.0, longest: float = 60.0) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0

    def next(self) -> float:
        delay = min(self.first * float(2**self.failures), self.longest)
        self.failures += 1
        return delay

    def reset(self) -> bool:
        """Back to the first wait; True when there was an outage to end."""
        was = self.failures > 0
        self.failures = 0
        return was

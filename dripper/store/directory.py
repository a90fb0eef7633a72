"""Is a delivery ours (sent, or being sent, to a customer who was not forgotten)? The one
question a pixel or a redirect asks the database before it answers, asked the cheapest
way there is: by the Message-ID's unique index, through the database driver itself
(SQLAlchemy's machinery costs ten times the query here), and never a write. The hit itself
waits in the queue (dripper.web.writer).

The lookups of one turn of the event loop go as one query (`IN (...)`, `= ANY(array)`):
under load a query answers a dozen requests or more instead of one. Measured with
`bench/serve.py` on SQLite, one query per request cost `serve` about 30 us of CPU a hit
while the hit writer committed (each statement is a read transaction of its own on a
database that changes sixteen times a second); batched, about 6.

SQLite: a read-only connection of its own (WAL: readers never wait for the writer), read
at the end of the turn, on the event loop: a read of a few index pages.
PostgreSQL: first what `serve` already knows (dripper.store.known: the recent sends, and
each new one as PostgreSQL announces it), which is nearly every hit; then a few
asynchronous psycopg connections, so a slow query never blocks the loop.
When the database does not answer, `exists` says None and the caller decides: a redirect
still happens (its target is in the token), the hit is resolved later by the writer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from typing import Any

import sqlalchemy as sa

from dripper.store.known import KnownDeliveries

log = logging.getLogger("dripper.serve")

MANY_PG = "SELECT message_id FROM outbox WHERE message_id = ANY(%s)"
MANY_SQLITE = "SELECT message_id FROM outbox WHERE message_id IN ({})"
_SQLITE_CHUNK = 500  # ids per statement: far below SQLite's limit on parameters
# A delivery sent when the From address had another domain: looked up with each domain
# dripper gave (store/message_domains.py), by the index like any other: a forgotten
# customer's link costs what a valid one costs, never a scan of the outbox (issue 23).
DOMAINS = "SELECT data FROM campaign_state WHERE campaign = {p}"
DOMAINS_FOR = 60.0  # seconds the list of domains is trusted before it is read again


class DeliveryDirectory:
    def __init__(
        self, database_url: str, domain: str, *, connections: int = 4, remember: bool = True
    ) -> None:
        """`remember`: on PostgreSQL, keep what it announces (dripper.store.known); False asks
        the database every time."""
        self.remember = remember
        self.url = sa.make_url(database_url)
        self.domain = domain
        self.size = connections
        self._sqlite: sqlite3.Connection | None = None
        self._pg: list[tuple[asyncio.Lock, Any]] = []
        self._turn = itertools.count()
        self._pending: dict[str, list[asyncio.Future[bool]]] = {}
        self._opening: asyncio.Lock | None = None
        self._known: KnownDeliveries | None = None
        # How lookups were answered (`/metrics`): plain counts, cheaper than a metric's lock.
        self.from_memory = 0
        self.from_database = 0
        self._domains: list[str] = []
        self._domains_read = -DOMAINS_FOR  # monotonic time of the last read
        self._trouble_logged = -60.0

    def start(self) -> None:
        """On PostgreSQL, begin listening for deliveries and reading the recent ones (in
        the background: until that is done, lookups ask the database)."""
        if self._known is None and self.remember and not self.url.drivername.startswith("sqlite"):
            self._known = KnownDeliveries(self._conninfo())
            self._known.start()

    def _conninfo(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def exists(self, delivery_id: str) -> bool | None:
        """True: ours. False: unknown (never sent, or its customer was forgotten). None:
        the database did not answer."""
        exact = f"{delivery_id}@{self.domain}"
        known = self._known
        if known is not None and known.known(exact):
            self.from_memory += 1
            return True
        self.from_database += 1
        sqlite = self.url.drivername.startswith("sqlite")
        try:
            if not sqlite:
                await self._pg_open()
            if await self._batched(exact, sqlite):
                return True
            others = [
                f"{delivery_id}@{d}" for d in await self._other_domains(sqlite) if d != self.domain
            ]
            if not others:
                return False
            found = await asyncio.gather(*(self._batched(other, sqlite) for other in others))
            return any(found)
        except Exception as exc:
            self._trouble(exc)
            await self._close_lookups()  # opened again by the next lookup
            return None

    def _trouble(self, exc: Exception) -> None:
        """An outage is logged once a minute, not once per lookup (issue 23)."""
        import time

        now = time.monotonic()
        if now - self._trouble_logged >= 60.0:
            self._trouble_logged = now
            log.error("cannot look up deliveries (logged once a minute while it lasts): %s", exc)

    async def _other_domains(self, sqlite: bool) -> list[str]:
        """The domains dripper gave Message-IDs (store/message_domains.py), read again
        once a minute at most."""
        import json
        import time

        from dripper.store.message_domains import MAX_DOMAINS, STATE

        now = time.monotonic()
        if now - self._domains_read < DOMAINS_FOR:
            return self._domains
        if sqlite:
            row = self._sqlite_connection().execute(DOMAINS.format(p="?"), (STATE,)).fetchone()
        else:
            lock, conn = self._pg[next(self._turn) % len(self._pg)]
            async with lock:
                cursor = await conn.execute(DOMAINS.format(p="%s"), (STATE,))
                row = await cursor.fetchone()
        data = row[0] if row is not None else None
        if isinstance(data, str):  # SQLite keeps JSON as text
            data = json.loads(data)
        domains = data.get("domains", []) if isinstance(data, dict) else []
        self._domains = [d for d in domains if isinstance(d, str)][:MAX_DOMAINS]
        self._domains_read = now
        return self._domains

    def _batched(self, exact: str, sqlite: bool) -> asyncio.Future[bool]:
        """Whether this Message-ID is stored, answered with every other lookup of this
        turn of the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiting = self._pending.get(exact)
        if waiting is not None:
            waiting.append(future)
            return future
        if not self._pending:  # the first of this turn: look them all up after it
            loop.call_soon(self._sqlite_flush if sqlite else self._pg_flush)
        self._pending[exact] = [future]
        return future

    def _sqlite_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            path = self.url.database or ""
            self._sqlite = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        return self._sqlite

    def _sqlite_flush(self) -> None:
        batch, self._pending = self._pending, {}
        try:
            conn = self._sqlite_connection()
            ids = list(batch)
            found: set[str] = set()
            for i in range(0, len(ids), _SQLITE_CHUNK):
                part = ids[i : i + _SQLITE_CHUNK]
                sql = MANY_SQLITE.format(", ".join("?" * len(part)))
                found.update(row[0] for row in conn.execute(sql, part))
        except Exception as exc:
            _fail(batch, exc)
            return
        _answer(batch, found)

    async def _pg_open(self) -> None:
        if self._pg:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pg:
                return
            import psycopg

            conninfo = self._conninfo()
            self.start()
            opened = []
            for _ in range(self.size):
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                opened.append((asyncio.Lock(), conn))
            self._pg = opened

    def _pg_flush(self) -> None:
        batch, self._pending = self._pending, {}
        asyncio.get_running_loop().create_task(self._pg_lookup(batch))

    async def _pg_lookup(self, batch: dict[str, list[asyncio.Future[bool]]]) -> None:
        known = self._known
        since = known.generation if known is not None else 0
        try:
            lock, conn = self._pg[next(self._turn) % len(self._pg)]
            async with lock:
                cursor = await conn.execute(MANY_PG, (list(batch),), prepare=True)
                found = {row[0] for row in await cursor.fetchall()}
        except Exception as exc:
            _fail(batch, exc)
            return
        if known is not None:
            known.learn(found, since)
        _answer(batch, found)

    async def close(self) -> None:
        known, self._known = self._known, None
        if known is not None:
            await known.close()
        await self._close_lookups()

    async def _close_lookups(self) -> None:
        """The lookup connections only: the listener mends its own connection."""
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        pg, self._pg = self._pg, []
        for _lock, conn in pg:
            try:
                await conn.close()
            except Exception as exc:  # closing a broken connection: nothing more to do
                log.debug("closing: %s", exc)


def _answer(batch: dict[str, list[asyncio.Future[bool]]], found: set[str]) -> None:
    for message_id, futures in batch.items():
        for future in futures:
            if not future.done():
                future.set_result(message_id in found)


def _fail(batch: dict[str, list[asyncio.Future[bool]]], exc: Exception) -> None:
    for futures in batch.values():
        for future in futures:
            if not future.done():
                future.set_exception(exc)

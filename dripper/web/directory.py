"""Is a delivery ours (sent, or being sent, to a customer who was not forgotten)? The one
question a pixel or a redirect asks the database before it answers, asked the cheapest
way there is: one read by the Message-ID's unique index, on the event loop, through the
database driver itself (SQLAlchemy's machinery costs ten times the query here), and never
a write. The hit itself waits in the queue (dripper.web.writer).

SQLite: a read-only connection of its own (WAL: readers never wait for the writer).
PostgreSQL: a few asynchronous psycopg connections, so a slow query never blocks the loop,
and the lookups of one turn of the event loop go as one query (`= ANY(array)`): under load
a round trip serves dozens of requests instead of one.
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

log = logging.getLogger("dripper.serve")

EXACT = "SELECT 1 FROM outbox WHERE message_id = {p}"
MANY = "SELECT message_id FROM outbox WHERE message_id = ANY(%s)"
# A delivery sent when the From address had another domain: found by its prefix (rare).
PREFIX = "SELECT 1 FROM outbox WHERE message_id LIKE {p} LIMIT 1"


class DeliveryDirectory:
    def __init__(self, database_url: str, domain: str, *, connections: int = 4) -> None:
        self.url = sa.make_url(database_url)
        self.domain = domain
        self.size = connections
        self._sqlite: sqlite3.Connection | None = None
        self._pg: list[tuple[asyncio.Lock, Any]] = []
        self._turn = itertools.count()
        self._pending: dict[str, list[asyncio.Future[bool]]] = {}
        self._opening: asyncio.Lock | None = None

    async def exists(self, delivery_id: str) -> bool | None:
        """True: ours. False: unknown (never sent, or its customer was forgotten). None:
        the database did not answer."""
        exact = f"{delivery_id}@{self.domain}"
        prefix = f"{delivery_id}@%"  # delivery ids are [a-z0-9]: nothing to escape
        try:
            if self.url.drivername.startswith("sqlite"):
                return self._sqlite_exists(exact, prefix)
            return await self._pg_exists(exact, prefix)
        except Exception as exc:
            log.error("cannot look up a delivery: %s", exc)
            await self.close()
            return None

    def _sqlite_exists(self, exact: str, prefix: str) -> bool:
        if self._sqlite is None:
            path = self.url.database or ""
            self._sqlite = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        conn = self._sqlite
        if conn.execute(EXACT.format(p="?"), (exact,)).fetchone() is not None:
            return True
        return conn.execute(PREFIX.format(p="?"), (prefix,)).fetchone() is not None

    async def _pg_exists(self, exact: str, prefix: str) -> bool:
        await self._pg_open()
        waiting = self._pending.get(exact)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if waiting is not None:
            waiting.append(future)
        else:
            if not self._pending:  # the first of this turn: look them all up after it
                asyncio.get_running_loop().call_soon(self._flush)
            self._pending[exact] = [future]
        if await future:
            return True
        lock, conn = self._pg[next(self._turn) % len(self._pg)]
        async with lock:
            cursor = await conn.execute(PREFIX.format(p="%s"), (prefix,))
            return await cursor.fetchone() is not None

    async def _pg_open(self) -> None:
        if self._pg:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pg:
                return
            import psycopg

            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            opened = []
            for _ in range(self.size):
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                opened.append((asyncio.Lock(), conn))
            self._pg = opened

    def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        asyncio.get_running_loop().create_task(self._lookup(batch))

    async def _lookup(self, batch: dict[str, list[asyncio.Future[bool]]]) -> None:
        try:
            lock, conn = self._pg[next(self._turn) % len(self._pg)]
            async with lock:
                cursor = await conn.execute(MANY, (list(batch),), prepare=True)
                found = {row[0] for row in await cursor.fetchall()}
        except Exception as exc:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for message_id, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(message_id in found)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        pg, self._pg = self._pg, []
        for _lock, conn in pg:
            try:
                await conn.close()
            except Exception as exc:  # closing a broken connection: nothing more to do
                log.debug("closing: %s", exc)

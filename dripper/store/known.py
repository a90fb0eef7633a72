"""The deliveries `serve` knows are stored, in memory (PostgreSQL): a pixel or a redirect
of a known email is answered without asking the database.

What keeps the memory true is PostgreSQL itself (migration 0009): a trigger announces on
the channel `dripper_deliveries` each Message-ID given to a send (`sent <id> <schema>`),
another every statement that deletes sends (`deleted <nonce> <schema>`: `forget`);
another schema's (another shop in the same database) are ignored. Notifications come in
commit order on one connection that `serve` holds LISTENing, so:
- what was learnt is dropped the moment a `deleted` arrives, and what a lookup found is
  kept only if no `deleted` (nor a lost connection) came between the lookup's start and
  its answer (`generation`): the memory never says "ours" of a send a committed `forget`
  removed, once its notification is in (PostgreSQL sends it as the `forget` commits, and
  the hit writer never stores a hit of a removed send);
- the recent sends read at start are kept only once the notifications that came while
  they were read are applied;
- while the listening connection is down, or cannot prove itself every CHECK seconds
  (triggers there and enabled, its own ping back), nothing is known and every lookup asks
  the database, as before; without the triggers (or after the downgrade's `stop`) the
  memory stays off until `serve` restarts.

What is not known is asked (dripper.store.directory), so the memory only ever saves work:
the newest CAPACITY / 2 sends are read when the connection opens, and sends claimed
later are announced. At most CAPACITY Message-IDs are held (about 125 bytes each), in two
generations: when the newer fills, the older is let go, and an id found in the older
moves to the newer, so the emails people are opening stay.

Measured with `bench/serve.py` on PostgreSQL: the lookup this saves cost `serve` 35-50 us
and PostgreSQL 20-25 us of CPU per hit, even batched (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("dripper.serve")

CHANNEL = "dripper_deliveries"
TRIGGERS = ("dripper_delivery_sent", "dripper_deliveries_deleted")
CAPACITY = 1_000_000
PAGE = 20_000  # Message-IDs per query when the most recent are read (the loop runs between)
RETRY = 1.0  # seconds between attempts to listen again
# Every CHECK seconds the listening connection proves itself: the triggers are still
# there and enabled, and a NOTIFY it sends itself comes back within the next CHECK.
# Otherwise (a trigger disabled by hand, a connection dead without a reset, a pooler that
# swallows notifications) it starts over, and meanwhile every lookup asks the database.
CHECK = 10.0
APPLICATION = "dripper serve: deliveries"  # the listening connection, in pg_stat_activity

_HAS_TRIGGERS = (
    "SELECT n.nspname, count(t.tgname) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = ANY(%s) "
    "AND t.tgenabled IN ('O', 'A') "
    "WHERE c.oid = 'outbox'::regclass GROUP BY n.nspname"
)
_PING = "SELECT pg_notify(%s, %s)"
_RECENT = (
    "SELECT id, message_id FROM outbox WHERE message_id IS NOT NULL AND id < %s "
    "ORDER BY id DESC LIMIT %s"
)


class _Unheard(Exception):
    """The notifications can no longer be trusted to arrive: listen again."""


class KnownDeliveries:
    """Message-IDs known to be stored, while PostgreSQL keeps telling."""

    def __init__(self, conninfo: str, *, capacity: int = CAPACITY) -> None:
        self.conninfo = conninfo
        self.half = max(1, capacity // 2)
        self.live = False  # listening, and the recent sends read: `known` may answer
        self.generation = 0  # moves on whenever what was learnt may no longer hold
        self._new: set[str] = set()
        self._old: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.schema = ""  # of the `outbox` this connection reads (its search_path)
        self._listening = False  # LISTEN is on: what lookups find may be kept
        self._pid = 0  # the listening connection's backend (its own pings come back)
        self._pinged = self._ponged = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def known(self, message_id: str) -> bool:
        """True only when this Message-ID is stored for certain (as of the notifications
        received); False means "ask the database"."""
        if not self.live:
            return False
        if message_id in self._new:
            return True
        if message_id in self._old:
            self._remember(message_id)
            return True
        return False

    def learn(self, message_ids: set[str], since: int) -> None:
        """Keep what a lookup that started at generation `since` found (only while
        listening: otherwise no delete would ever clear it)."""
        if since == self.generation and self._listening:
            for message_id in message_ids:
                self._remember(message_id)

    def _remember(self, message_id: str) -> None:
        self._new.add(message_id)
        if len(self._new) >= self.half:
            self._old, self._new = self._new, set()

    def _clear(self) -> None:
        """Nothing is known, and no lookup already under way may teach otherwise."""
        self.generation += 1
        self._new, self._old = set(), set()

    def _forget_all(self) -> None:
        self.live = False
        self._listening = False
        self._clear()

    async def _follow(self) -> None:
        """Listen, read the recent sends, apply notifications; again after any failure."""
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=APPLICATION
                )
            except Exception as exc:
                log.warning("cannot listen for deliveries (asking the database): %s", exc)
                await asyncio.sleep(RETRY)
                continue
            try:
                async with conn:
                    if not await self._listen(conn):
                        return  # no triggers: ask the database, always (until a restart)
                    await self._read_recent(conn)
                    # What came while reading, in order, before the memory may answer.
                    async for notice in conn.notifies(timeout=0):
                        self._apply(notice.payload, notice.pid)
                    self.live = True
                    while True:
                        await self._prove(conn)
                        async for notice in conn.notifies(timeout=CHECK):
                            self._apply(notice.payload, notice.pid)
            except Exception as exc:
                log.warning("stopped listening for deliveries (asking the database): %s", exc)
            finally:
                self._forget_all()
            await asyncio.sleep(RETRY)

    async def _listen(self, conn: Any) -> bool:
        if not await self._has_triggers(conn):
            log.warning(
                "the database lacks dripper's delivery triggers (run `dripper db upgrade`, "
                "then restart serve): every pixel and redirect asks the database"
            )
            return False
        await conn.execute(f"LISTEN {CHANNEL}")
        # Only what is looked up from now on may be kept: a `forget` committed before
        # LISTEN was never announced to this connection.
        self._forget_all()
        self._listening = True
        self._pid = conn.info.backend_pid
        self._pinged = self._ponged = 0
        return True

    async def _has_triggers(self, conn: Any) -> bool:
        cursor = await conn.execute(_HAS_TRIGGERS, (list(TRIGGERS),))
        row = await cursor.fetchone()
        if row is None or row[1] != len(TRIGGERS):
            return False
        self.schema = row[0]
        return True

    async def _prove(self, conn: Any) -> None:
        """The last ping came back and the triggers are still there; send the next ping.
        A connection that cannot answer within CHECK seconds is as good as gone."""
        if self._ponged != self._pinged:
            raise _Unheard("a notification sent to itself did not come back")
        async with asyncio.timeout(CHECK):
            if not await self._has_triggers(conn):
                raise _Unheard("the delivery triggers are gone or disabled")
            self._pinged += 1
            await conn.execute(_PING, (CHANNEL, f"ping {self._pinged}"))

    async def _read_recent(self, conn: Any) -> None:
        """The newest sends' Message-IDs, a page at a time (notifications wait meanwhile,
        in order, and are applied after)."""
        since = self.generation
        before = 2**63 - 1
        read: list[str] = []
        while len(read) < self.half:
            cursor = await conn.execute(_RECENT, (before, min(PAGE, self.half - len(read))))
            rows = await cursor.fetchall()
            if not rows:
                break
            read.extend(message_id for _, message_id in rows)
            before = rows[-1][0]
        # A `deleted` that came meanwhile waits in the connection's backlog and is applied
        # before the memory answers (`_follow`), and clears what this kept.
        self.learn(set(read), since)

    def _apply(self, payload: str, pid: int) -> None:
        """One notification. After a `deleted` nothing is known, and what lookups find
        from then on is learnt again (not the recent sends read anew: a script that
        forgets a thousand customers would have them read a thousand times).

        Payloads: `sent <message-id> <schema>`, `deleted <nonce> <schema>` (the nonce
        keeps PostgreSQL from merging two deletes of one transaction into one),
        `stop <nonce> <schema>` (the triggers are being dropped), `ping <n>` (another
        serve's, or this connection's own)."""
        kind, _, rest = payload.partition(" ")
        if kind == "ping":
            if pid == self._pid:
                self._ponged = int(rest)
            return
        word, _, schema = rest.partition(" ")
        if schema != self.schema:
            return  # another shop's, in another schema of this database
        if kind == "sent":
            self._remember(word)
            return
        # "deleted"; "stop" or anything this version does not understand: listen again
        # (the triggers are checked first, and without them nothing is kept).
        self._clear()
        if kind != "deleted":
            raise _Unheard(f"the database said {kind!r}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._forget_all()

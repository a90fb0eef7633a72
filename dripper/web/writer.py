"""Hits are answered at once and written in batches: a bounded in-process queue and one
writer thread that takes up to BATCH hits or what came in FLUSH seconds and has them
written in one transaction (by `serve`'s hit writer process, `dripper.web.hitproc`: the
thread only hands the batch over and waits, so the requests keep the interpreter).

A pixel or a redirect never waits on a write. What that costs, said plainly: a hit that
was answered is in this queue until its batch commits (about FLUSH seconds); SIGTERM
drains the queue before the process exits, a SIGKILL loses what was queued. When hits come
faster than the database takes them and the queue is full, a request waits for room
(backpressure: overload becomes latency, not loss) for up to WAIT seconds; only then is
its hit dropped, and counted (`dripper_hits_dropped_total`), never silently. A database
that stops answering keeps the batch in hand and retries.
Unsubscribes and answers do not come through here: they are written before their 200.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from dripper.services.hits import Hit

log = logging.getLogger("dripper.serve")

BATCH = 500
FLUSH = 0.05  # seconds
CAPACITY = 100_000  # hits held while the database is slow: a newsletter's morning of opens
RETRY = 1.0  # seconds between attempts when the database fails
WAIT = 10.0  # seconds a request waits for room in a full queue before its hit is dropped


class HitWriter:
    def __init__(
        self,
        write: Callable[[Sequence[Hit]], dict[tuple[str, str], int]],
        *,
        capacity: int = CAPACITY,
        on_written: Callable[[dict[tuple[str, str], int]], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._write = write
        # A deque, not a queue.Queue: appending wakes nobody. A Queue's `put` signals the
        # waiting writer thread on every hit, and each of those wake-ups is a GIL hand-off
        # that the event loop pays for (it cost `serve` three quarters of its throughput).
        self._pending: deque[Hit] = deque()
        self._capacity = capacity
        self._in_hand = 0  # taken for the batch being written, not yet committed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hit-writer", daemon=True)
        self._on_written = on_written or (lambda counts: None)
        self._on_dropped = on_dropped or (lambda n: None)
        self.failing = False  # the last write failed (health and metrics say so)

    def start(self) -> None:
        self._thread.start()

    def put(self, hit: Hit) -> bool:
        """Queue a hit at once; False when the queue is full (see `wait_put`)."""
        if len(self._pending) >= self._capacity:
            return False
        self._pending.append(hit)  # atomic: the writer thread pops from the other end
        return True

    async def wait_put(self, hit: Hit) -> bool:
        """Queue a hit, waiting (without blocking the loop) while the queue is full; after
        WAIT seconds the hit is dropped and counted. True when queued."""
        if self.put(hit):
            return True
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if self.put(hit):
                return True
        self._on_dropped(1)
        return False

    def depth(self) -> int:
        """Hits answered and not yet committed."""
        return len(self._pending) + self._in_hand

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop (SIGTERM: nothing answered is lost)."""
        self._stop.set()
        self._thread.join(timeout)
        left = self.depth()
        if left:
            log.error("stopped with %d hit(s) unwritten: the database did not answer", left)
            self._on_dropped(left)

    def _run(self) -> None:
        while True:
            # Wake every FLUSH seconds (or at once when stopping) and write all that came
            # meanwhile, BATCH hits per transaction.
            stopping = self._stop.wait(FLUSH)
            while self._pending:
                batch = self._take()
                self._commit(batch)
                self._in_hand = 0
            if stopping:
                return

    def _take(self) -> list[Hit]:
        pending = self._pending
        batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
        self._in_hand = len(batch)
        return batch

    def _commit(self, batch: list[Hit]) -> None:
        while True:
            try:
                written = self._write(batch)
            except Exception as exc:  # the database is down or busy: keep the batch, retry
                if not self.failing:
                    log.error("cannot write %d hit(s), retrying: %s", len(batch), exc)
                self.failing = True
                time.sleep(RETRY)  # stopping or not: `stop` waits for it, up to its timeout
                continue
            self.failing = False
            self._on_written(written)
            return

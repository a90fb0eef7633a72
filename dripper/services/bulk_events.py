"""Many events at once (an order export, a backfill): batches of events, each stored and
planned in one transaction by the planner, in one worker or, on PostgreSQL, in two
threads that share the customers by address.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from dripper.services.report import Report

if TYPE_CHECKING:
    from dripper.store import Store
    from dripper.store.ingest import NewEvent


class Planner(Protocol):
    """What batching needs of services.planning.Planner (which calls this module: a
    protocol here, not an import back)."""

    @property
    def store(self) -> Store: ...

    def check(
        self,
        at: datetime,
        data: Mapping[str, Any],
        where: str = "--data",
        *,
        type_: str | None = None,
        ext_id: str | None = None,
    ) -> None: ...

    def record_batch(self, batch: Sequence[NewEvent], now: datetime) -> Report: ...

ANALYZE_EVERY = 200_000  # bulk ingestion: refresh PostgreSQL's statistics this often


class _Stopped(Exception):
    """A bulk-ingestion worker was told to stop because another part failed."""


def in_batches(
    planner: Planner,
    items: Iterable[NewEvent],
    now: datetime,
    batch_size: int,
    *,
    analyze: bool = True,
) -> Report:
    """Batches of at most `batch_size` events, a customer at most once per batch (a
    customer met twice closes it, so the second event sees the first one's effects)."""
    from dripper.store import ingest

    report = Report()
    batch: list[NewEvent] = []
    seen: set[str] = set()
    done = 0
    next_analyze = 1  # after the first batch, then every ANALYZE_EVERY events
    for item in items:
        planner.check(
            item.at,
            item.data,
            where=f"event {item.type} for {item.email}",
            type_=item.type,
            ext_id=item.id,
        )
        if item.email in seen or len(batch) >= batch_size:
            report.add(planner.record_batch(batch, now))
            done += 1
            if analyze and done >= next_analyze:
                ingest.refresh_statistics(planner.store)
                next_analyze = done + ANALYZE_EVERY // batch_size
            batch, seen = [], set()
        batch.append(item)
        seen.add(item.email)
    if batch:
        report.add(planner.record_batch(batch, now))
    return report


def in_parallel(
    planner: Planner, items: Iterable[NewEvent], now: datetime, batch_size: int, workers: int
) -> Report:
    """Threads, not processes: the planning is Python (one core, the GIL), the other
    core runs PostgreSQL, and psycopg lets go of the GIL while it waits. Customers are
    disjoint between workers, so their transactions never wait for each other.

    When anything fails (a bad event, the database, Ctrl-C), every worker stops at
    once and drops the batch it was gathering: what was committed is, for each
    customer, a prefix of their events in input order."""
    import queue
    import threading
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    end = object()  # end of a worker's stream
    stop = threading.Event()
    inboxes: list[queue.Queue[Any]] = [queue.Queue(maxsize=4) for _ in range(workers)]

    def stream(inbox: queue.Queue[Any]) -> Iterator[NewEvent]:
        while True:
            try:
                chunk = inbox.get(timeout=0.2)
            except queue.Empty:
                chunk = None
            if stop.is_set():
                raise _Stopped
            if chunk is end:
                return
            if chunk is not None:
                yield from chunk

    def work(worker: int) -> Report:
        try:
            # one ANALYZE at a time is enough: the tables are shared
            return in_batches(
                planner, stream(inboxes[worker]), now, batch_size, analyze=worker == 0
            )
        except BaseException:
            stop.set()
            raise

    def put(worker: int, chunk: object) -> None:
        while not stop.is_set():
            try:
                inboxes[worker].put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    report = Report()
    with ThreadPoolExecutor(workers, thread_name_prefix="record-events") as pool:
        futures = [pool.submit(work, worker) for worker in range(workers)]
        pending: list[list[NewEvent]] = [[] for _ in range(workers)]
        try:
            for item in items:
                worker = zlib.crc32(item.email.encode()) % workers
                pending[worker].append(item)
                if len(pending[worker]) >= 500:
                    put(worker, pending[worker])
                    pending[worker] = []
            for worker in range(workers):
                put(worker, pending[worker])
                put(worker, end)
        except _Stopped:
            pass  # a worker failed: its error is raised below
        except BaseException:
            stop.set()
            raise
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if not isinstance(e, _Stopped | None)), None)
        if first is not None:
            raise first
        for future in futures:
            report.add(future.result())
    return report

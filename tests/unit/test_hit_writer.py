"""The hit queue of `dripper serve` (`dripper.web.writer`) and the frames its writer
process reads (`dripper.web.hitproc`), with a write function standing in for the database:
batches, backpressure, draining on stop, retrying a failed write, exact times."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from dripper.engine.hits import HitKind
from dripper.services.hits import Hit
from dripper.web import hitproc, writer
from dripper.web.writer import HitWriter

AT = datetime(2027, 3, 1, 9, 0, 0, 123457, tzinfo=UTC)


def hits(n: int) -> list[Hit]:
    return [
        Hit(HitKind.OPEN, f"d{i:05d}", AT + timedelta(microseconds=i), "GET", "ua", "203.0.113.7")
        for i in range(n)
    ]


class Recorder:
    """A write function that keeps what it was given (and can be told to fail)."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[Hit]] = []
        self.failures = failures
        self.calls = 0

    def __call__(self, batch: Sequence[Hit]) -> dict[tuple[str, str], int]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database is down")
        self.batches.append(list(batch))
        return {("open", "human"): len(batch)}


def test_stop_writes_everything_queued_in_order_in_batches_of_at_most_batch() -> None:
    """SIGTERM's promise: all answered hits are written, in the order they came, never
    more than BATCH per transaction; what was written is reported."""
    recorder = Recorder()
    written: list[int] = []
    queue = HitWriter(recorder, on_written=lambda counts: written.append(sum(counts.values())))
    for hit in hits(1_234):
        assert queue.put(hit)
    queue.start()
    queue.stop()
    flat = [h for batch in recorder.batches for h in batch]
    assert flat == hits(1_234)
    assert max(len(b) for b in recorder.batches) <= writer.BATCH
    assert sum(written) == 1_234
    assert queue.depth() == 0


def test_hits_are_written_within_a_flush_while_running() -> None:
    """A hit waits about FLUSH seconds for its batch, not until the queue fills."""
    recorder = Recorder()
    queue = HitWriter(recorder)
    queue.start()
    try:
        queue.put(hits(1)[0])
        deadline = time.monotonic() + 5
        while not recorder.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.batches == [hits(1)]
    finally:
        queue.stop()


def test_a_full_queue_refuses_at_once_and_counts_the_hit_in_depth() -> None:
    """The queue is bounded: past its capacity `put` says no (the caller waits)."""
    queue = HitWriter(Recorder(), capacity=3)
    assert [queue.put(h) for h in hits(4)] == [True, True, True, False]
    assert queue.depth() == 3


def test_a_hit_that_finds_no_room_for_wait_seconds_is_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backpressure first, loss last: `wait_put` waits WAIT seconds, then counts a drop."""
    monkeypatch.setattr(writer, "WAIT", 0.05)
    dropped: list[int] = []
    queue = HitWriter(Recorder(), capacity=1, on_dropped=dropped.append)
    assert queue.put(hits(1)[0])
    assert asyncio.run(queue.wait_put(hits(2)[1])) is False
    assert dropped == [1]


def test_a_waiting_hit_gets_in_when_the_writer_makes_room() -> None:
    """A full queue slows a request down; it does not lose its hit."""
    recorder = Recorder()
    queue = HitWriter(recorder, capacity=1)
    queue.put(hits(1)[0])
    threading.Timer(0.1, queue.start).start()
    assert asyncio.run(queue.wait_put(hits(2)[1])) is True
    queue.stop()
    assert [h for b in recorder.batches for h in b] == hits(2)


def test_a_failed_write_keeps_the_batch_and_retries_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database down for a moment: the same batch is written once it is back, and
    `failing` says so meanwhile."""
    monkeypatch.setattr(writer, "RETRY", 0.01)
    recorder = Recorder(failures=2)
    queue = HitWriter(recorder)
    for hit in hits(10):
        queue.put(hit)
    queue.start()
    queue.stop()
    assert recorder.calls == 3
    assert recorder.batches == [hits(10)]
    assert queue.failing is False


def test_frames_carry_hits_exactly() -> None:
    """Kind, delivery, method, agent, address, URL and the time to the microsecond come
    out of a frame as they went in."""
    sent = [
        *hits(3),
        Hit(HitKind.CLICK, "abc", AT, "HEAD", "", None, "https://acme.test/é?q=1"),
    ]
    stream = io.BytesIO()
    hitproc.write_frame(stream, hitproc.encode(sent))
    hitproc.write_frame(stream, ("ok", [("open", "human", 3)]))
    stream.seek(0)
    rows = hitproc.read_frame(stream)
    assert rows is not None
    assert hitproc.decode(rows) == sent
    assert hitproc.read_frame(stream) == ("ok", [("open", "human", 3)])
    assert hitproc.read_frame(stream) is None


def test_a_frame_cut_short_is_the_end_of_the_stream() -> None:
    """A writer killed in the middle of a frame: the reader stops, it never guesses."""
    stream = io.BytesIO()
    hitproc.write_frame(stream, hitproc.encode(hits(5)))
    cut = io.BytesIO(stream.getvalue()[:-3])
    assert hitproc.read_frame(cut) is None

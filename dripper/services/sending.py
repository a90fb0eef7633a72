"""Sending one claimed batch (the part of delivery between rendering and recording):
the emails go out in chunks with their attempts written before and their outcomes right
after, leases kept alive meanwhile, and what a database outage leaves in memory parked
for `Sender.settle` (issue 23). Also how a send is named in the log: by its delivery id,
never the customer's address.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from dripper.engine.delivery import decide
from dripper.engine.model import SendStatus
from dripper.store.outage import describe, is_outage

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.engine.delivery import RetryPolicy
    from dripper.ratelimit import RateLimiter
    from dripper.services.report import Progress
    from dripper.store import Store
    from dripper.store.deliveries import DueSend, SendResult
    from dripper.transport.base import Outcome, Transport

log = logging.getLogger("dripper.run")


class Sender(Protocol):
    """What sending a batch needs of services.delivery.Sender (which calls this module:
    a protocol here, not an import back)."""

    config: Config
    store: Store
    transport: Transport
    owner: str
    limiter: RateLimiter | None
    progress: Progress
    retry: RetryPolicy
    parked: Parked

    def envelope_sender(self, send: DueSend) -> str: ...

    def after_results(
        self, conn: Any, due: Sequence[DueSend], results: Sequence[SendResult], now: datetime
    ) -> None: ...


async def send_batch(
    sender: Sender, ready: Sequence[tuple[DueSend, bytes]], now: datetime
) -> list[SendResult]:
    """Send concurrently (the transport's pool size), paced by the shared rate, while
    a heartbeat keeps the batch's leases alive.

    The batch goes out in small chunks (`[sending] chunk` sends per connection): a
    chunk's attempts are written before any of it is sent, and its outcomes right
    after, in worker threads that overlap with the next chunk's sending. A crash
    leaves as ambiguous only the few chunks around the moment it happened, never the
    whole batch; the database sees three transactions per chunk, not per email."""
    from dripper.store import deliveries
    from dripper.store.sql import chunks
    from dripper.transport.base import Envelope, OutcomeKind

    transport = sender.transport
    store = sender.store
    verp = sender.envelope_sender
    pool = int(sender.config.transport.concurrency)
    concurrency = asyncio.Semaphore(pool)
    limiter = sender.limiter
    by_id = {send.id: send for send, _ in ready}
    attempts: dict[int, int] = {}

    parked = sender.parked

    def open_attempts(ids: list[int]) -> None:
        with store.transaction() as conn:
            attempts.update(deliveries.open_attempts(conn, ids, now=now))

    recorded: set[int] = set()  # sends whose outcome is in the database

    def record(results: list[SendResult]) -> None:
        with store.transaction() as conn:
            deliveries.record_results(conn, results, now=now, attempts=attempts)
            sender.after_results(conn, [by_id[r.id] for r in results], results, now)
        recorded.update(r.id for r in results)

    async def one(send: DueSend, data: bytes) -> SendResult:
        async with concurrency:
            if stopped:  # the database went away: nothing more goes out
                return _not_started(send)
            if limiter is not None:
                try:
                    await limiter.wait()
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    stopped.append(exc)
                    return _not_started(send)
            outcome = await transport.send(
                Envelope(send.message_id, verp(send), send.customer.email, data)
            )
        if outcome.kind is OutcomeKind.SENT:
            sender.progress.sent += 1
        return result_of(sender, send, outcome, now)

    parts = list(chunks(ready, sender.config.chunk * pool))
    keeper = asyncio.create_task(  # noqa: RUF006 (cancelled and awaited below)
        keep_leases(sender, [send.id for send, _ in ready])
    )
    done: list[SendResult] = []
    stopped: list[BaseException] = []  # a database outage met while sending
    recording: asyncio.Task[None] | None = None
    opening: asyncio.Task[None] | None = None
    try:
        opening = asyncio.create_task(  # noqa: RUF006 (awaited in the loop)
            asyncio.to_thread(open_attempts, [s.id for s, _ in parts[0]])
        )
        for i, part in enumerate(parts):
            assert opening is not None  # the chunk's attempts, opened meanwhile
            await opening
            opening = None
            if i + 1 < len(parts):
                ids = [s.id for s, _ in parts[i + 1]]
                opening = asyncio.create_task(asyncio.to_thread(open_attempts, ids))
            results = list(await asyncio.gather(*(one(send, data) for send, data in part)))
            sent = [r for r in results if r.attempted]
            done += sent  # they went out: from here on never given back, only recorded
            if recording is not None:
                await recording
            recording = asyncio.create_task(asyncio.to_thread(record, sent))
            if stopped:
                raise stopped[0]
        if recording is not None:
            await recording
        return done
    except Exception as exc:
        if is_outage(exc):
            # What went out and is not recorded waits in memory for the database
            # (`settle` records it); the rest of the batch is given back to the queue.
            for task in (opening, recording):
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)
            unrecorded = [r for r in done if r.id not in recorded]
            parked.results += [(by_id[r.id], r) for r in unrecorded]
            parked.attempts.update(attempts)
            sent_ids = {r.id for r in done}
            parked.unstarted.update(s.id for s, _ in ready if s.id not in sent_ids)
        raise
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)

async def keep_leases(sender: Sender, ids: Sequence[int]) -> None:
    from dripper.store import deliveries

    while True:
        await asyncio.sleep(sender.config.lease.total_seconds() / 3)
        try:
            with sender.store.transaction() as conn:
                deliveries.extend_leases(
                    conn, ids, owner=sender.owner, lease=sender.config.lease
                )
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.debug("leases not extended: %s", describe(exc))  # tried again next time

def result_of(sender: Sender, send: DueSend, outcome: Outcome, now: datetime) -> SendResult:
    """The outcome, judged by the delivery policy, as the row to record."""
    from dripper.store.deliveries import SendResult

    decision = decide(
        outcome, attempts=send.attempts, due_at=send.due_at, policy=sender.retry, now=now
    )
    if decision.status is SendStatus.PLANNED:
        log.warning(
            "%s: %s; retrying at %s",
            delivery_of(send.message_id),
            without_addresses(str(outcome)),
            decision.retry_at,
        )
    return SendResult(
        send.id,
        decision.status,
        decision.reason,
        next_attempt_at=decision.retry_at,
        attempted=True,
        outcome=outcome.kind.value,
        smtp_code=outcome.code,
        smtp_enhanced=outcome.enhanced,
        smtp_reply=outcome.reply,
        started_at=now,
        suppress=decision.suppress,
        policy=decision.policy,
    )




@dataclass
class Parked:
    """What a database outage left in a daemon's memory (see `Sender.settle`)."""

    results: list[tuple[DueSend, SendResult]] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)  # outbox id -> open attempt
    unstarted: set[int] = field(default_factory=set)  # claimed, never handed over

    def __bool__(self) -> bool:
        return bool(self.results or self.unstarted)

    def handled(self) -> set[int]:
        return {r.id for _, r in self.results}


def _not_started(send: DueSend) -> SendResult:
    """A send of a batch the database stopped before it went out (given back later)."""
    from dripper.store.deliveries import SendResult

    return SendResult(send.id, SendStatus.PLANNED, "not started: the database went away")


def delivery_of(message_id: str) -> str:
    """What a log line names a send by: its delivery id (the random part of its
    Message-ID, as VERP and the links carry it), never the customer's address."""
    from dripper.tokens import TokenError, delivery_id

    try:
        return f"delivery {delivery_id(message_id)}"
    except TokenError:
        return "a delivery"


_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def without_addresses(text: str) -> str:
    """A server's reply or an error as a log may keep it: SMTP replies quote the
    recipient ("<ada@example.com>: Recipient address rejected"), and logs outlive
    `forget`."""
    return _ADDRESS.sub("<address>", text)



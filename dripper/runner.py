"""The daemon's work, one pass at a time: plan what is due, then send what is due.

This is the adapter layer around the pure planner (`dripper.engine.plan`): it reads state
from the store in batches, asks the planner, writes the answers back in the same
transaction, and hands rendered emails to the transport. It never reads the clock: every
pass takes `now`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.model import Ending, EventDecisions, NewEnrollment, SendStatus, Verdict
from dripper.engine.timing import schedule_runs

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Edition
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.dkim import DkimSigner
    from dripper.ratelimit import RateLimiter
    from dripper.render.renderer import Renderer
    from dripper.store import Store
    from dripper.store.ingest import NewEvent
    from dripper.store.planning import DueSend, SendResult
    from dripper.store.records import EventRecord
    from dripper.transport.base import Outcome, Transport

log = logging.getLogger("dripper.run")

LEASE = timedelta(minutes=15)  # the default of [sending] lease
SCAN_EVERY = timedelta(minutes=15)  # date and time-dependent `when` triggers
EARLIEST_OFFSET = timedelta(hours=14)  # UTC+14: where a run day begins first
MAX_CATCH_UP = timedelta(days=7)  # older date-trigger days are history, not news
ANALYZE_EVERY = 200_000  # bulk ingestion: refresh PostgreSQL's statistics this often


class _Stopped(Exception):
    """A bulk-ingestion worker was told to stop because another part failed."""


@dataclass
class Report:
    """What one pass did; the CLI prints it, `simulate` collects it."""

    enrolled: int = 0
    sent: int = 0
    skipped: int = 0
    cancelled: int = 0
    deferred: int = 0
    failed: int = 0
    ambiguous: int = 0
    warnings: list[str] = field(default_factory=list)
    deliveries: list[tuple[datetime, str, str, str, str]] = field(default_factory=list)

    def add(self, other: Report) -> None:
        for name in ("enrolled", "sent", "skipped", "cancelled", "deferred", "failed", "ambiguous"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.warnings += other.warnings
        self.deliveries += other.deliveries

    def summary(self, *, dry_run: bool = False) -> str:
        if dry_run:  # nothing was planned or sent: say what would have been
            parts = [f"would send {self.sent}"]
        else:
            parts = [f"{self.enrolled} enrolled", f"{self.sent} sent"]
        for name in ("deferred", "skipped", "cancelled", "failed", "ambiguous"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        return ", ".join(parts)


@dataclass
class Progress:
    """Live counters for the status line (updated as each email goes out)."""

    sent: int = 0


class Runner:
    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        *,
        renderer: Renderer | None = None,
        transport: Transport | None = None,
        owner: str | None = None,
        signer: DkimSigner | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """`signer`: DKIM (None: unsigned). `limiter`: the shared send rate (None: as fast
        as the transport's pool goes)."""
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self.by_name = {c.name: c for c in self.campaigns}
        self.renderer = renderer
        self.transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.signer = signer
        self.limiter = limiter
        self.progress = Progress()
        self._policy_hits: dict[str, int] = {}
        self._header_fields = _subject_event_fields(self.campaigns)

    # --- events ------------------------------------------------------------------------

    def record_event(
        self, email: str, type_: str, *, at: datetime, data: Mapping[str, Any], now: datetime
    ) -> tuple[Customer, EventRecord, EventDecisions]:
        """Store an event and everything it causes (enrollments, conversions, exits) in one
        transaction: an event is never recorded without its plan, nor planned twice."""
        from dripper.store import bulk, planning
        from dripper.store import customers as customer_ops

        self._check(at, data)
        with self.store.transaction() as conn:
            customer, record = customer_ops.record_event(
                conn, self.store.dialect, email, type_, at=at, data=data, now=now
            )
            active = planning.active_enrollments(conn, customer.id)
            decisions = plan.on_event(
                self.campaigns,
                customer,
                planning.event_facts(record),
                active,
                fallback_tz=self.config.timezone,
                now=now,
            )
            planning.end_enrollments(conn, decisions.end, now=now)
            bulk.save_enrollments(
                conn, self.store.dialect, [(customer.id, e) for e in decisions.enroll], now=now
            )
        return customer, record, decisions  # the caller reports decisions.warnings

    def _check(self, at: datetime, data: Mapping[str, Any], where: str = "--data") -> None:
        """Refuse, before anything is written, what no database or email header can hold."""
        from dripper.eventdata import check_at, check_event_data, check_header_fields

        check_at(at, where="--at" if where == "--data" else where)
        check_event_data(data, where=where)
        check_header_fields(data, self._header_fields, where=where)

    def record_events(
        self,
        items: Iterable[NewEvent],
        *,
        now: datetime,
        batch_size: int = 2000,
        workers: int | None = None,
    ) -> Report:
        """Store many events and plan what they cause, a batch per transaction (an order
        export, a backfill). Same decisions as `record_event`, one event at a time per
        customer: a customer met twice closes the batch, so the second event sees the
        first one's effects. Memory stays flat however many events come.

        On PostgreSQL two workers (`workers` to choose) share the customers by address,
        each with its own connection: while one waits for the database the other plans,
        and a customer's events stay in order in one worker. SQLite has one writer, so one
        worker there."""
        if self.store.dialect != "postgresql":
            workers = 1  # one writer, one shared connection
        elif workers is None:
            workers = 2
        if workers <= 1:
            return self._record_in_batches(items, now, batch_size)
        return self._record_in_parallel(items, now, batch_size, workers)

    def _record_in_batches(
        self, items: Iterable[NewEvent], now: datetime, batch_size: int, *, analyze: bool = True
    ) -> Report:
        from dripper.store import ingest

        report = Report()
        batch: list[NewEvent] = []
        seen: set[str] = set()
        done = 0
        next_analyze = 1  # after the first batch, then every ANALYZE_EVERY events
        for item in items:
            self._check(item.at, item.data, where=f"event {item.type} for {item.email}")
            if item.email in seen or len(batch) >= batch_size:
                report.add(self._record_batch(batch, now))
                done += 1
                if analyze and done >= next_analyze:
                    ingest.refresh_statistics(self.store)
                    next_analyze = done + ANALYZE_EVERY // batch_size
                batch, seen = [], set()
            batch.append(item)
            seen.add(item.email)
        if batch:
            report.add(self._record_batch(batch, now))
        return report

    def _record_in_parallel(
        self, items: Iterable[NewEvent], now: datetime, batch_size: int, workers: int
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
                return self._record_in_batches(
                    stream(inboxes[worker]), now, batch_size, analyze=worker == 0
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

    def _record_batch(self, batch: Sequence[NewEvent], now: datetime) -> Report:
        from dripper.store import bulk, ingest, planning

        report = Report()
        with self.store.transaction() as conn:
            stored = ingest.store_events(conn, self.store.dialect, batch, now=now)
            active = ingest.active_enrollments_of(conn, [c.id for c, _ in stored])
            endings: list[Ending] = []
            planned: list[tuple[int, NewEnrollment]] = []
            for customer, facts in stored:
                decisions = plan.on_event(
                    self.campaigns,
                    customer,
                    facts,
                    active.get(customer.id, ()),
                    fallback_tz=self.config.timezone,
                    now=now,
                )
                endings += decisions.end
                planned += [(customer.id, e) for e in decisions.enroll]
                report.warnings += decisions.warnings
            planning.end_enrollments(conn, endings, now=now)
            report.enrolled += bulk.save_enrollments(conn, self.store.dialect, planned, now=now)
        return report

    # --- planning passes -----------------------------------------------------------------

    def plan(self, now: datetime, *, force_scan: bool = False) -> Report:
        """Enroll whoever is due: date triggers, `when` triggers, schedule runs."""
        from dripper.campaigns import DateTrigger, WhenTrigger

        report = Report()
        for campaign in self.campaigns:
            if campaign.schedule is not None:
                report.add(self._schedule(campaign, now))
            elif isinstance(campaign.trigger, DateTrigger | WhenTrigger):
                report.add(self._scan(campaign, now, force=force_scan))
        return report

    def _scan(self, campaign: Campaign, now: datetime, *, force: bool) -> Report:
        """Date and `when` triggers over the customers. A `when` that does not read `now`
        only needs the customers changed since the last scan."""
        from dripper.campaigns import DateTrigger, WhenTrigger
        from dripper.store import planning

        report = Report()
        with self.store.reading() as conn:
            state = planning.load_state(conn, campaign.name)
        last = _parse_time(state.get("last_scan"))
        trigger = campaign.trigger
        time_dependent = isinstance(trigger, DateTrigger) or (
            isinstance(trigger, WhenTrigger) and "now" in trigger.condition.names
        )
        if not force and last is not None and time_dependent and now - last < SCAN_EVERY:
            return report
        changed_since = None if time_dependent else last

        def planned(batch: list[Customer]) -> list[tuple[int, NewEnrollment]]:
            found = []
            for customer in batch:
                if isinstance(trigger, DateTrigger):
                    new = plan.date_enrollment(
                        campaign,
                        customer,
                        now=now,
                        fallback_tz=self.config.timezone,
                        warnings=report.warnings,
                        max_age=MAX_CATCH_UP,
                    )
                else:
                    new = plan.when_enrollment(
                        campaign,
                        customer,
                        now=now,
                        fallback_tz=self.config.timezone,
                        warnings=report.warnings,
                    )
                if new is not None:
                    found.append((customer.id, new))
            return found

        report.enrolled += self._save_pages(map(planned, self._customers(changed_since)), now)
        with self.store.transaction() as conn:
            planning.save_state(
                conn, self.store.dialect, campaign.name, {**state, "last_scan": now.isoformat()}
            )
        return report

    def _schedule(self, campaign: Campaign, now: datetime) -> Report:
        """A recurring campaign: each run due enrolls every subscribed customer, with the
        next unused edition; a run with no edition left is skipped with a warning."""
        from dripper.store import planning

        assert campaign.schedule is not None
        report = Report()
        with self.store.reading() as conn:
            state = planning.load_state(conn, campaign.name)
        runs: dict[str, str | None] = dict(state.get("runs", {}))
        last = max((date.fromisoformat(r) for r in runs), default=None)
        # A run day begins first at UTC+14; each customer's own day starts later.
        until = (now + EARLIEST_OFFSET).date()
        due = schedule_runs(campaign.schedule.starting, campaign.schedule.every, last, until)
        if not due:
            return report
        for missed in due[:-1]:  # the daemon was down: send the latest run, not a backlog
            runs[missed.isoformat()] = None
            report.warnings.append(f"{campaign.name}: run of {missed} missed (daemon not running)")
        run = due[-1]
        edition = self._next_edition(campaign, runs, run)
        if campaign.editions_dir is not None and edition is None:
            runs[run.isoformat()] = None
            report.warnings.append(
                f"{campaign.name}: run of {run} skipped: no edition left in "
                f"{campaign.editions_dir} (add a Markdown file; never an empty newsletter)"
            )
        else:
            runs[run.isoformat()] = edition.slug if edition is not None else ""

            def planned(batch: list[Customer]) -> list[tuple[int, NewEnrollment]]:
                return [
                    (c.id, new)
                    for c in batch
                    if (
                        new := plan.schedule_enrollment(
                            campaign, c, run, fallback_tz=self.config.timezone, now=now
                        )
                    )
                    is not None
                ]

            report.enrolled += self._save_pages(map(planned, self._customers(None)), now)
        with self.store.transaction() as conn:
            planning.save_state(conn, self.store.dialect, campaign.name, {**state, "runs": runs})
        return report  # warnings travel in the report: whoever shows it shows them once

    def _save_pages(self, pages: Iterable[list[tuple[int, NewEnrollment]]], now: datetime) -> int:
        """Save each page of planned enrollments in its own transaction; returns how many
        were new. On PostgreSQL a writer thread saves a page while the next one is read
        and planned (psycopg lets go of the GIL while it waits); one page in flight at a
        time keeps memory flat and brings a failure back at once. SQLite's one shared
        connection is written from this thread."""
        from concurrent.futures import Future, ThreadPoolExecutor

        if self.store.dialect != "postgresql":
            return sum(self._save_page(page, now) for page in pages)
        created = 0
        with ThreadPoolExecutor(1, thread_name_prefix="save-enrollments") as writer:
            saving: Future[int] | None = None
            for page in pages:
                if saving is not None:
                    created += saving.result()
                saving = writer.submit(self._save_page, page, now)
            if saving is not None:
                created += saving.result()
        return created

    def _save_page(self, page: list[tuple[int, NewEnrollment]], now: datetime) -> int:
        from dripper.store import bulk

        if not page:
            return 0
        with self.store.transaction() as conn:
            return bulk.save_enrollments(conn, self.store.dialect, page, now=now)

    def _customers(self, changed_since: datetime | None) -> Iterator[list[Customer]]:
        """Subscribed customers a page at a time, each page its own short read."""
        from dripper.store import reads

        after = 0
        while True:
            with self.store.reading() as conn:
                batch = reads.subscribed_page(
                    conn, after_id=after, limit=1000, changed_since=changed_since
                )
            if not batch:
                return
            yield batch
            after = batch[-1].id

    @staticmethod
    def _next_edition(
        campaign: Campaign, runs: Mapping[str, str | None], run: date
    ) -> Edition | None:
        used = {slug for slug in runs.values() if slug}
        for edition in campaign.editions:
            if edition.slug in used:
                continue
            if edition.not_before is not None and edition.not_before > run:
                continue
            return edition
        return None

    def edition_for(self, campaign: Campaign, occurrence: str) -> Edition | None:
        from dripper.store import planning

        if not campaign.editions:
            return None
        with self.store.reading() as conn:
            slug = planning.load_state(conn, campaign.name).get("runs", {}).get(occurrence)
        return campaign.edition(slug) if slug else None

    # --- sending -------------------------------------------------------------------------

    async def send_due(self, now: datetime, *, stop: asyncio.Event | None = None) -> Report:
        """Claim what is due in batches; check, render, sign, send and record each.

        `stop` (SIGTERM): no new batch is claimed; the one in flight is finished and
        recorded. Leases are in database time and kept alive while a batch is in flight;
        an attempt is written before its email goes out, so a daemon killed mid-send
        leaves an ambiguous send (retried with the same Message-ID), never a lost one."""
        from dripper.store import planning

        assert self.renderer is not None
        assert self.transport is not None
        report = Report()
        with self.store.transaction() as conn:
            _requeued, ambiguous = planning.recover_orphans(
                conn,
                self.store.dialect,
                now=now,
                retry_at=now + self.config.retry[0],
                every=self.store.dialect == "sqlite",
            )
        if ambiguous:
            log.warning(
                "%d send(s) were in flight when a daemon stopped: recorded as ambiguous "
                "(possibly delivered), retried with the same Message-ID",
                ambiguous,
            )
        report.ambiguous += ambiguous
        while stop is None or not stop.is_set():
            with self.store.transaction() as conn:
                due = self._claim(conn, now, claim=True)
            if not due:
                break
            results, recorded = await self._deliver(due, now, report)
            rest = [(d, r) for d, r in zip(due, results, strict=True) if r.id not in recorded]
            if rest:
                with self.store.transaction() as conn:
                    planning.record_results(conn, [r for _, r in rest], now=now)
                    self._after_results(conn, [d for d, _ in rest], [r for _, r in rest], now)
        return report

    async def dry_run(self, now: datetime) -> Report:
        """What `send_due` would send now, rendered (and signed) but neither sent nor
        recorded: nothing is claimed, planned or written."""
        report = Report()
        with self.store.reading() as conn:
            due = self._claim(conn, now, claim=False)
        await self._deliver(due, now, report, dry=True)
        return report

    def _claim(self, conn: Any, now: datetime, *, claim: bool) -> list[DueSend]:
        """The next batch due (claimed under a lease, or only looked at for --dry-run)."""
        from dripper.store import planning
        from dripper.tokens import new_message_id

        assert self.renderer is not None
        sender = self.renderer.sender.email
        return planning.claim_due(
            conn,
            self.store.dialect,
            now=now,
            limit=self.config.batch_size,
            owner=self.owner,
            lease=self.config.lease,
            new_message_id=lambda: new_message_id(sender),
            claim=claim,
        )

    def _after_results(
        self, conn: Any, due: Sequence[DueSend], results: Sequence[SendResult], now: datetime
    ) -> None:
        """5.1.x suppresses the address; repeated 5.7.x (policy) pauses the campaign."""
        from dripper.store import planning
        from dripper.store.privacy import suppress
        from dripper.store.records import SuppressionReason

        for result, send in zip(results, due, strict=True):
            enhanced = result.smtp_enhanced or ""
            if result.status is SendStatus.FAILED and enhanced.startswith("5.1."):
                suppress(
                    conn,
                    self.store.dialect,
                    send.customer.email,
                    reason=SuppressionReason.BOUNCED,
                    now=now,
                )
            if result.outcome is None:
                continue
            if result.status is SendStatus.FAILED and enhanced.startswith("5.7."):
                count = self._policy_hits.get(send.campaign, 0) + 1
                self._policy_hits[send.campaign] = count
                limit = int(self.config.transport.get("pause_after_policy", 5))
                if count >= limit:
                    reason = (
                        f"paused after {count} policy rejections (last: {result.smtp_code} "
                        f"{enhanced} {result.smtp_reply or ''}".rstrip()
                        + "): fix the content or the sending reputation, then "
                        f"`dripper resume {send.campaign}`"
                    )
                    planning.pause_campaign(conn, self.store.dialect, send.campaign, reason)
                    log.error("campaign %s %s", send.campaign, reason)
                    self._policy_hits[send.campaign] = 0
            elif result.status is SendStatus.SENT:
                self._policy_hits[send.campaign] = 0

    async def _deliver(
        self, due: Sequence[DueSend], now: datetime, report: Report, *, dry: bool = False
    ) -> tuple[list[SendResult], set[int]]:
        from dripper.store import planning
        from dripper.store.planning import SendResult

        cap = self.config.max_per_customer
        recent: dict[int, list[datetime]] = {}
        if cap is not None:
            with self.store.reading() as conn:
                recent = planning.recent_sends(
                    conn,
                    {d.customer.id for d in due},
                    since=now - cap.period,
                    campaigns=[c.name for c in self.campaigns if not c.transactional],
                    exempt_steps={
                        (c.name, step.id)
                        for c in self.campaigns
                        for step in c.steps
                        if step.transactional
                    },
                )
        # Decide in order first (the cap must count sends made earlier in this batch), then
        # render and send concurrently.
        results: dict[int, SendResult] = {}
        to_send: list[tuple[DueSend, Campaign, Any, Edition | None]] = []
        for send in due:
            campaign = self.by_name.get(send.campaign)
            step = campaign.step(send.step) if campaign is not None else None
            if campaign is None or step is None:
                what = "campaign" if campaign is None else "step"
                results[send.id] = SendResult(
                    send.id, SendStatus.CANCELLED, f"{what} no longer exists"
                )
                continue
            edition = self.edition_for(campaign, send.occurrence) if campaign.editions else None
            ctx = plan.context(send.customer, campaign, now, send.event, edition)
            decision = plan.send_decision(
                campaign=campaign,
                step=step,
                customer=send.customer,
                suppressed=send.suppressed,
                enrollment_status=send.enrollment_status,
                ctx=ctx,
                now=now,
                fallback_tz=self.config.timezone,
                quiet_hours=self.config.quiet_hours,
                cap=cap,
                recent_sends=recent.get(send.customer.id, []),
            )
            if decision.verdict is Verdict.SEND:
                if not (campaign.transactional or step.transactional):
                    recent.setdefault(send.customer.id, []).append(now)
                to_send.append((send, campaign, step, edition))
            elif decision.verdict is Verdict.DEFER:
                results[send.id] = SendResult(
                    send.id, SendStatus.PLANNED, decision.reason, next_attempt_at=decision.until
                )
            else:
                status = (
                    SendStatus.SKIPPED if decision.verdict is Verdict.SKIP else SendStatus.CANCELLED
                )
                results[send.id] = SendResult(send.id, status, decision.reason)

        ready: list[tuple[DueSend, bytes]] = []
        for send, campaign, step, edition in to_send:
            rendered = self._render(send, campaign, step, edition, now)
            if isinstance(rendered, bytes):
                ready.append((send, rendered))
            else:
                results[send.id] = rendered
        recorded: set[int] = set()
        if dry:
            for send, _data in ready:
                results[send.id] = SendResult(send.id, SendStatus.SENT, "dry run: not sent")
        elif ready:
            for result in await self._send_all(ready, now):
                results[result.id] = result
                recorded.add(result.id)
        ordered = [results[d.id] for d in due]
        for send, result in zip(due, ordered, strict=True):
            _count(report, result)
            if result.status is SendStatus.SENT:
                report.deliveries.append(
                    (now, send.customer.email, send.campaign, send.step, send.message_id)
                )
        return ordered, recorded

    def _render(
        self, send: DueSend, campaign: Campaign, step: Any, edition: Edition | None, now: datetime
    ) -> bytes | SendResult:
        """The signed message, or the failure to record (a template error is the
        campaign's problem: failed with the reason, never a crash of the daemon)."""
        from dripper.errors import DripperError
        from dripper.store.planning import SendResult

        assert self.renderer is not None
        try:
            email = self.renderer.render(
                campaign,
                step,
                send.customer,
                now=now,
                message_id=send.message_id,
                variant=send.variant,
                edition=edition,
            )
        except DripperError as exc:
            log.error(
                "render failed for %s (%s/%s): %s",
                send.customer.email,
                send.campaign,
                send.step,
                exc,
            )
            return SendResult(send.id, SendStatus.FAILED, f"render: {exc}")
        if self.signer is None:
            return email.mime
        return self.signer.sign(email.mime, timestamp=int(now.timestamp()))

    async def _send_all(self, ready: Sequence[tuple[DueSend, bytes]], now: datetime) -> list[Any]:
        """Send concurrently (the transport's pool size), paced by the shared rate, while
        a heartbeat keeps the batch's leases alive.

        The batch goes out in small chunks (four per connection): a chunk's attempts are
        written before any of it is sent, and its outcomes right after, in worker threads
        that overlap with the next chunk's sending. A crash leaves as ambiguous only the
        few chunks around the moment it happened, never the whole batch; the database
        sees three transactions per chunk, not per email."""
        from dripper.store import planning
        from dripper.store.sql import chunks
        from dripper.transport.base import Envelope, OutcomeKind

        assert self.renderer is not None
        transport = self.transport
        assert transport is not None
        store, dialect = self.store, self.store.dialect
        sender = self.renderer.sender.email
        pool = int(self.config.transport.get("concurrency", 4))
        concurrency = asyncio.Semaphore(pool)
        limiter = self.limiter
        by_id = {send.id: send for send, _ in ready}
        attempts: dict[int, int] = {}

        def open_attempts(ids: list[int]) -> None:
            with store.transaction() as conn:
                attempts.update(planning.open_attempts(conn, dialect, ids, now=now))

        def record(results: list[SendResult]) -> None:
            with store.transaction() as conn:
                planning.record_results(conn, results, now=now, attempts=attempts)
                self._after_results(conn, [by_id[r.id] for r in results], results, now)

        async def one(send: DueSend, data: bytes) -> SendResult:
            async with concurrency:
                if limiter is not None:
                    await limiter.wait()
                outcome = await transport.send(
                    Envelope(send.message_id, sender, send.customer.email, data)
                )
            if outcome.kind is OutcomeKind.SENT:
                self.progress.sent += 1
            return self._result(send, outcome, now, now)

        parts = list(chunks(ready, max(8, 4 * pool)))
        keeper = asyncio.create_task(  # noqa: RUF006 (cancelled and awaited below)
            self._keep_leases([send.id for send, _ in ready])
        )
        done: list[SendResult] = []
        recording: asyncio.Task[None] | None = None
        try:
            opening = asyncio.create_task(  # noqa: RUF006 (awaited in the loop)
                asyncio.to_thread(open_attempts, [s.id for s, _ in parts[0]])
            )
            for i, part in enumerate(parts):
                await opening
                if i + 1 < len(parts):
                    ids = [s.id for s, _ in parts[i + 1]]
                    opening = asyncio.create_task(asyncio.to_thread(open_attempts, ids))
                results = list(await asyncio.gather(*(one(send, data) for send, data in part)))
                if recording is not None:
                    await recording
                recording = asyncio.create_task(asyncio.to_thread(record, results))
                done += results
            if recording is not None:
                await recording
            return done
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_leases(self, ids: Sequence[int]) -> None:
        from dripper.store import planning

        while True:
            await asyncio.sleep(self.config.lease.total_seconds() / 3)
            with self.store.transaction() as conn:
                planning.extend_leases(
                    conn, self.store.dialect, ids, owner=self.owner, lease=self.config.lease
                )

    def _result(
        self, send: DueSend, outcome: Outcome, now: datetime, started: datetime
    ) -> SendResult:
        from dripper.store.planning import SendResult
        from dripper.transport.base import OutcomeKind

        common: dict[str, Any] = dict(
            attempted=True,
            outcome=outcome.kind.value,
            smtp_code=outcome.code,
            smtp_enhanced=outcome.enhanced,
            smtp_reply=outcome.reply,
            started_at=started,
        )
        if outcome.kind is OutcomeKind.SENT:
            return SendResult(send.id, SendStatus.SENT, None, **common)
        if outcome.kind is OutcomeKind.FAILED:
            return SendResult(send.id, SendStatus.FAILED, str(outcome), **common)
        # Deferred, or ambiguous (retried with the same Message-ID), until give-up.
        if now - send.due_at >= self.config.give_up_after:
            return SendResult(
                send.id,
                SendStatus.FAILED,
                f"gave up after {self.config.give_up_after}: {outcome}",
                **common,
            )
        delays = self.config.retry
        delay = delays[min(send.attempts, len(delays) - 1)]
        log.warning(
            "%s to %s: %s; retrying in %s", send.message_id, send.customer.email, outcome, delay
        )
        return SendResult(
            send.id, SendStatus.PLANNED, str(outcome), next_attempt_at=now + delay, **common
        )

    # --- one whole pass --------------------------------------------------------------------

    async def run_once(self, now: datetime) -> Report:
        report = self.plan(now)
        report.add(await self.send_due(now))
        return report


def _subject_event_fields(campaigns: Sequence[Campaign]) -> frozenset[str] | None:
    """The event fields any subject shows (None: possibly all of them)."""
    from dripper.campaigns.steps import subject_event_fields

    return subject_event_fields(
        subject for campaign in campaigns for step in campaign.steps for subject in step.subjects
    )


def _count(report: Report, result: SendResult) -> None:
    if result.status is SendStatus.SENT:
        report.sent += 1
    elif result.status is SendStatus.SKIPPED:
        report.skipped += 1
    elif result.status is SendStatus.CANCELLED:
        report.cancelled += 1
    elif result.status is SendStatus.FAILED:
        report.failed += 1
    elif result.status is SendStatus.PLANNED:
        if result.outcome == "ambiguous":
            report.ambiguous += 1
        else:
            report.deferred += 1


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

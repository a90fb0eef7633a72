"""Planning: events and schedules in; enrollments and outbox rows out.

The adapter around the pure planner (`dripper.engine.plan`): it reads state from the store
in batches, asks the planner, and writes the answers back in the same transaction as what
caused them. It never reads the clock: every call takes `now`.

About 500 lines on purpose: one class is the planner's one public face (`record_event(s)`,
`plan`), and events, trigger scans and schedule runs share its customer pages, its page
writer, its spend refresh and its campaign state; split, the halves would call each
other's private helpers. The set-based SQL lives in store/schedule_runs.py and
store/customer_filter.py.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.model import Ending, EventDecisions, EventFacts, NewEnrollment
from dripper.engine.timing import schedule_runs
from dripper.services.report import Report

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Edition
    from dripper.config import Config
    from dripper.customers.model import Customer, CustomerData
    from dripper.store import Connection, Store
    from dripper.store.ingest import NewEvent
    from dripper.store.records import EventRecord

log = logging.getLogger("dripper.planning")


@dataclass(frozen=True)
class Recorded:
    """An event recorded: the customer right after it, the stored event, and what it
    caused (`decisions.warnings` holds everything worth telling whoever sent it)."""

    customer: Customer
    event: EventRecord
    decisions: EventDecisions

REFERRAL_CODE = re.compile(r"[a-z0-9]{8,64}")
SPEND_STATE = "~spend"  # campaign names are [a-z0-9-]+: this state row cannot clash
LOCK_WAIT = "500ms"  # the spend ranking waits this long for a row an event holds
SCAN_EVERY = timedelta(minutes=15)  # date and time-dependent `when` triggers
EARLIEST_OFFSET = timedelta(hours=14)  # UTC+14: where a run day begins first
MAX_CATCH_UP = timedelta(days=7)  # older date-trigger days are history, not news
SCHEDULE_PARTS = 2  # PostgreSQL: connections writing a schedule run side by side


class Planner:
    """Enrolls customers and plans their sends, for events as they are recorded and for
    date triggers, `when` triggers and schedules on each pass."""

    def __init__(self, config: Config, store: Store, campaigns: Sequence[Campaign]) -> None:
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self._header_fields = _subject_event_fields(self.campaigns)
        self._convertible = frozenset(c.name for c in self.campaigns if c.goal is not None)
        # Schedule runs by the database (store.schedule_runs); False plans them a customer
        # at a time in Python, which the tests compare with.
        self.set_based = True

    # --- events ------------------------------------------------------------------------

    def record_event(
        self,
        email: str,
        type_: str,
        *,
        at: datetime,
        data: Mapping[str, Any],
        now: datetime,
        attributes: Mapping[str, str] | None = None,
        ext_id: str | None = None,
        fields: CustomerData | None = None,
    ) -> Recorded | None:
        """Store an event and everything it causes (enrollments, conversions, exits) in one
        transaction: an event is never recorded without its plan, nor planned twice.
        `attributes` go on the customer sheet first (a one-click answer's), so the plan
        sees them; `fields` (what a shop says of its customer) too. None: an event of this
        type and `ext_id` was recorded before, and nothing changed."""
        self.check(at, data, ext_id=ext_id)
        with self.store.transaction() as conn:
            return self.record_in(
                conn,
                email,
                type_,
                at=at,
                data=data,
                now=now,
                attributes=attributes,
                ext_id=ext_id,
                fields=fields,
            )

    def record_in(
        self,
        conn: Connection,
        email: str,
        type_: str,
        *,
        at: datetime,
        data: Mapping[str, Any],
        now: datetime,
        attributes: Mapping[str, str] | None = None,
        ext_id: str | None = None,
        fields: CustomerData | None = None,
    ) -> Recorded | None:
        """`record_event` inside the caller's transaction (checked by the caller): the
        events API records up to 1,000 events all or nothing."""
        from dripper.store import customers as customer_ops
        from dripper.store import enrollments, sheet

        recorded = customer_ops.record_event(
            conn,
            email,
            type_,
            at=at,
            data=data,
            now=now,
            ext_id=ext_id,
            fields=fields,
            currency=self.config.currency,
        )
        if recorded is None:
            return None  # a duplicate: no enrollment, no goal, no spend
        customer, record = recorded.customer, recorded.event
        if attributes:
            customer = sheet.set_attributes(conn, customer.id, attributes)
        decisions = self._plan_event(conn, customer, enrollments.event_facts(record), now)
        warnings = recorded.warnings + decisions.warnings
        if type_ == "purchase":
            referral = self._referral(conn, customer, data, at=at, now=now)
            if referral is not None:
                warnings += referral.warnings
        decisions = EventDecisions(decisions.enroll, decisions.end, warnings)
        return Recorded(customer, record, decisions)  # the caller reports the warnings

    def _plan_event(
        self, conn: Connection, customer: Customer, facts: EventFacts, now: datetime
    ) -> EventDecisions:
        """What one stored event causes, written in the caller's transaction."""
        from dripper.store import bulk, enrollments

        decisions = plan.on_event(
            self.campaigns,
            customer,
            facts,
            enrollments.active_enrollments(conn, customer.id, convertible=self._convertible),
            fallback_tz=self.config.timezone,
            now=now,
        )
        enrollments.end_enrollments(conn, decisions.end, now=now)
        bulk.save_enrollments(
            conn, [(customer.id, e) for e in decisions.enroll], now=now
        )
        return decisions

    def _referral(
        self,
        conn: Connection,
        buyer: Customer,
        data: Mapping[str, Any],
        *,
        at: datetime,
        now: datetime,
    ) -> EventDecisions | None:
        """A purchase whose `ref` is a customer's referral code: the buyer is recorded as
        referred by them (once: the first referral counts) and the referrer gets a
        `referral` event, planned like any event. Nobody refers themselves."""
        from dripper.store import customers as customer_ops
        from dripper.store import enrollments, sheet

        code = data.get("ref")
        if not isinstance(code, str) or not REFERRAL_CODE.fullmatch(code.strip().lower()):
            return None
        code = code.strip().lower()
        referrer = sheet.by_referral_code(conn, code)
        if referrer is None or referrer.id == buyer.id or "referred_by" in buyer.attributes:
            return None
        sheet.set_attributes(conn, buyer.id, {"referred_by": code})
        recorded = customer_ops.record_event(
            conn, referrer.email, "referral", at=at, data={}, now=now
        )
        assert recorded is not None  # no id: never a duplicate
        return self._plan_event(
            conn, recorded.customer, enrollments.event_facts(recorded.event), now
        )

    def check(
        self,
        at: datetime,
        data: Mapping[str, Any],
        where: str = "--data",
        *,
        type_: str | None = None,
        ext_id: str | None = None,
    ) -> None:
        """Refuse, before anything is written, what no database or email header can hold:
        and with `type_`, money that cannot be counted (an amount, a currency code)."""
        from dripper.eventdata import (
            check_at,
            check_event_data,
            check_event_id,
            check_header_fields,
        )
        from dripper.money import event_money

        check_at(at, where="--at" if where == "--data" else where)
        if ext_id is not None:
            check_event_id(ext_id, where="--id" if where == "--data" else where)
        check_event_data(data, where=where)
        check_header_fields(data, self._header_fields, where=where)
        if type_ is not None:
            event_money(type_, data, self.config.currency, where=where)

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
        from dripper.services import bulk_events

        if not self.store.concurrent_writers:
            workers = 1  # one writer, one shared connection
        elif workers is None:
            workers = 2
        if workers <= 1:
            return bulk_events.in_batches(self, items, now, batch_size)
        return bulk_events.in_parallel(self, items, now, batch_size, workers)

    def record_batch(self, batch: Sequence[NewEvent], now: datetime) -> Report:
        """One batch of events (one per customer) stored and planned in one transaction."""
        with self.store.transaction() as conn:
            return self.record_batch_in(conn, batch, now)

    def record_batch_in(
        self, conn: Connection, batch: Sequence[NewEvent], now: datetime, *, enroll: bool = True
    ) -> Report:
        """`record_batch` in the caller's transaction. Without `enroll` the events are
        history (an order export of past years): they update each customer (purchases,
        spend, first and last purchase) but enroll nobody, convert no goal, end nothing
        and refer nobody."""
        from dripper.store import bulk, enrollments, ingest

        report = Report()
        found = ingest.store_events(
            conn, batch, now=now, currency=self.config.currency
        )
        report.recorded += found.recorded
        report.duplicates += found.duplicates
        report.warnings += found.warnings
        stored = found.events
        if enroll and stored:
            active = enrollments.active_enrollments_of(
                conn, [c.id for c, _ in stored], convertible=self._convertible
            )
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
            enrollments.end_enrollments(conn, endings, now=now)
            report.enrolled += bulk.save_enrollments(conn, planned, now=now)
            for customer, facts in stored:  # referrers hear of their referred purchases
                if facts.type == "purchase" and "ref" in facts.data:
                    found_ref = self._referral(conn, customer, facts.data, at=facts.at, now=now)
                    if found_ref is not None:
                        report.enrolled += len(found_ref.enroll)
                        report.warnings += found_ref.warnings
        return report

    # --- planning passes -----------------------------------------------------------------

    def plan(self, now: datetime, *, force_scan: bool = False) -> Report:
        """Enroll whoever is due: date triggers, `when` triggers, schedule runs (after
        the spend percentiles are brought up to date, which `when` triggers may read)."""
        from dripper.campaigns import DateTrigger, WhenTrigger

        self.refresh_spend(now)
        report = Report()
        for campaign in self.campaigns:
            if campaign.schedule is not None:
                report.add(self._schedule(campaign, now))
            elif isinstance(campaign.trigger, DateTrigger | WhenTrigger):
                report.add(self._scan(campaign, now, force=force_scan))
        return report

    def refresh_spend(self, now: datetime) -> bool:
        """`customer.spend_percentile` and `spend_rank` recomputed, in one statement, when
        a purchase or a new customer may have changed them. True when it ran.

        What is remembered is what was seen before the update, with everyone ranked: a
        purchase committed meanwhile makes the next pass rank again, never leaves the ranks
        stale. On PostgreSQL one daemon ranks at a time, and the ranking gives way (waits
        at most LOCK_WAIT for a customer row, then tries next pass) to events being
        recorded, which must not fail for it."""
        from sqlalchemy.exc import OperationalError

        from dripper.store import campaign_state, spend

        try:
            with self.store.transaction() as conn:
                if not spend.take_turn(conn, lock_wait=LOCK_WAIT):
                    return False  # another daemon is ranking
                seen = spend.fingerprint(conn)
                state = campaign_state.load_state(conn, SPEND_STATE)
                if state.get("fingerprint") == seen:
                    return False
                ranked = [*seen[:-1], seen[0]]  # as it will be: every customer ranked
                spend.refresh(conn, now=now)
                campaign_state.save_state(
                    conn, SPEND_STATE, {"fingerprint": ranked}
                )
        except OperationalError as exc:
            if not self.store.concurrent_writers:  # no lock timeout: a real fault
                raise
            log.info("spend ranking put off to the next pass: %s", str(exc).splitlines()[0])
            return False
        return True

    def _scan(self, campaign: Campaign, now: datetime, *, force: bool) -> Report:
        """Date and `when` triggers over the customers. A `when` that does not read `now`
        only needs the customers changed since the last scan."""
        from dripper.campaigns import DateTrigger, WhenTrigger
        from dripper.store import campaign_state

        report = Report()
        with self.store.reading() as conn:
            state = campaign_state.load_state(conn, campaign.name)
        last = _parse_time(state.get("last_scan"))
        trigger = campaign.trigger
        time_dependent = isinstance(trigger, DateTrigger) or (
            isinstance(trigger, WhenTrigger) and "now" in trigger.condition.names
        )
        if not force and last is not None and time_dependent and now - last < SCAN_EVERY:
            return report
        changed_since = None if time_dependent else last

        enroll = (
            functools.partial(plan.date_enrollment, max_age=MAX_CATCH_UP)
            if isinstance(trigger, DateTrigger)
            else plan.when_enrollment
        )

        def planned(batch: list[Customer]) -> list[tuple[int, NewEnrollment]]:
            found = []
            for customer in batch:
                new = enroll(
                    campaign,
                    customer,
                    now=now,
                    fallback_tz=self.config.timezone,
                    warnings=report.warnings,
                )
                if new is not None:
                    found.append((customer.id, new))
            return found

        where = _scan_filter(campaign, self.store)
        pages = self._customers(changed_since, where)
        report.enrolled += self._save_pages(map(planned, pages), now)
        with self.store.transaction() as conn:
            campaign_state.save_state(
                conn, campaign.name, {**state, "last_scan": now.isoformat()}
            )
        return report

    def _schedule(self, campaign: Campaign, now: datetime) -> Report:
        """A recurring campaign: each run due enrolls every subscribed customer, with the
        next unused edition; a run with no edition left is skipped with a warning."""
        from dripper.store import campaign_state

        assert campaign.schedule is not None
        report = Report()
        with self.store.reading() as conn:
            state = campaign_state.load_state(conn, campaign.name)
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
            if self.set_based:
                report.enrolled += self._schedule_in_sql(campaign, run, now)
            else:
                report.enrolled += self._schedule_in_python(campaign, run, now)
        with self.store.transaction() as conn:
            campaign_state.save_state(
                conn, campaign.name, {**state, "runs": runs}
            )
        return report  # warnings travel in the report: whoever shows it shows them once

    def _schedule_in_sql(self, campaign: Campaign, run: date, now: datetime) -> int:
        """A run planned by the database (store.schedule_runs): a plan per time zone, two
        statements for all the customers. On PostgreSQL two connections write it side by
        side, each for a range of customer ids, each in one transaction: while one
        statement runs on one core the machine's other core had nothing to do (bench/
        README.md). A crash between the two commits leaves the run unrecorded, so the
        next pass plans it again and the unique keys keep what the first half wrote."""
        from concurrent.futures import ThreadPoolExecutor

        from dripper.store import schedule_runs

        def part(ids: tuple[int, int]) -> int:
            created = 0
            with self.store.transaction() as conn:
                known: dict[str, plan.ZonePlan] = {}
                while missing := schedule_runs.zones(conn, known=known, ids=ids):
                    for found in plan.schedule_zone_plans(
                        campaign, run, missing, fallback_tz=self.config.timezone, now=now
                    ):
                        known[found.timezone] = found
                    created += schedule_runs.enroll_run(
                        conn,
                        campaign.name,
                        run.isoformat(),
                        list(known.values()),
                        now=now,
                        ids=ids,
                    )
            return created

        if not self.store.concurrent_writers:
            return part((0, schedule_runs.ALL_IDS))  # one writer
        with self.store.reading() as conn:
            ranges = schedule_runs.id_ranges(conn, SCHEDULE_PARTS)
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="schedule-run") as pool:
            return sum(pool.map(part, ranges))

    def _schedule_in_python(self, campaign: Campaign, run: date, now: datetime) -> int:
        """A run planned a customer at a time: what `_schedule_in_sql` must equal (the
        tests compare them)."""

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

        return self._save_pages(map(planned, self._customers(None)), now)

    def _save_pages(self, pages: Iterable[list[tuple[int, NewEnrollment]]], now: datetime) -> int:
        """Save each page of planned enrollments in its own transaction; returns how many
        were new. On PostgreSQL a writer thread saves a page while the next one is read
        and planned (psycopg lets go of the GIL while it waits); one page in flight at a
        time keeps memory flat and brings a failure back at once. SQLite's one shared
        connection is written from this thread."""
        from concurrent.futures import Future, ThreadPoolExecutor

        if not self.store.concurrent_writers:
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
            return bulk.save_enrollments(conn, page, now=now)

    def _customers(
        self, changed_since: datetime | None, where: Any = None
    ) -> Iterator[list[Customer]]:
        """Subscribed customers a page at a time, each page its own short read; `where`
        narrows them in the database (a trigger's filter)."""
        from dripper.store import reads

        after = 0
        while True:
            with self.store.reading() as conn:
                batch = reads.subscribed_page(
                    conn, after_id=after, limit=1000, changed_since=changed_since, where=where
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


def _scan_filter(campaign: Campaign, store: Store) -> Any:
    """The SQL that narrows a trigger scan to the customers who can match: exactly those
    for a `when` in the compilable subset, those with the date set for a `date:`; None
    (every customer) otherwise. The planner still evaluates the trigger on each."""
    from dripper.campaigns import DateTrigger, WhenTrigger

    trigger = campaign.trigger
    if isinstance(trigger, WhenTrigger):
        return store.trigger_filter(when=trigger.condition.source)
    if isinstance(trigger, DateTrigger):
        return store.trigger_filter(date=trigger.date.source)
    return None


def _subject_event_fields(campaigns: Sequence[Campaign]) -> frozenset[str] | None:
    """The event fields any subject shows (None: possibly all of them)."""
    from dripper.campaigns.steps import subject_event_fields

    return subject_event_fields(
        subject for campaign in campaigns for step in campaign.steps for subject in step.subjects
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

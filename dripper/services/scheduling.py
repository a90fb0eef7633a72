"""Planning, the time-driven half: on each pass, date triggers (birthdays) and `when`
triggers scanned over the customers, schedule runs (newsletters) enrolled, and the spend
ranking brought up to date first (a `when` may read it). Never reads the clock: every call
takes `now`. The set-based SQL is in store/schedule_runs.py and store/customer_filter.py;
the pure decisions in engine/plan.py, the pass's cadence in engine/plan.py too (shared with
`dripper check`'s in-memory year, engine/simulation.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.model import NewEnrollment
from dripper.engine.plan import EARLIEST_OFFSET, MAX_CATCH_UP, SCAN_EVERY
from dripper.engine.timing import schedule_runs
from dripper.services.report import Report

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.store import Store

log = logging.getLogger("dripper.planning")

SPEND_STATE = "~spend"  # campaign names are [a-z0-9-]+: this state row cannot clash
LOCK_WAIT = "500ms"  # the spend ranking waits this long for a row an event holds
SCHEDULE_PARTS = 2  # PostgreSQL: connections writing a schedule run side by side


class Scheduler:
    """Enrolls whoever is due by the clock: date and `when` triggers, schedule runs."""

    def __init__(self, config: Config, store: Store, campaigns: Sequence[Campaign]) -> None:
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        # Schedule runs by the database (store.schedule_runs); False plans them a customer
        # at a time in Python, which the tests compare with.
        self.set_based = True

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
            if isinstance(trigger, WhenTrigger) and trigger.repeat:
                return self._repeat(campaign, batch, now, report)
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

        # A repeating trigger must see those who stopped matching too: no filter.
        repeating = isinstance(trigger, WhenTrigger) and trigger.repeat
        where = None if repeating else _scan_filter(campaign, self.store)
        pages = self._customers(changed_since, where)
        report.enrolled += self._save_pages(map(planned, pages), now)
        with self.store.transaction() as conn:
            campaign_state.save_state(
                conn, campaign.name, {**state, "last_scan": now.isoformat()}
            )
        return report

    def _repeat(
        self, campaign: Campaign, batch: list[Customer], now: datetime, report: Report
    ) -> list[tuple[int, NewEnrollment]]:
        """A page of a repeating `when:` (DESIGN 14): a new occurrence for each customer
        who starts to match again; the latest occurrence of each who stopped, marked
        lapsed (written here, before the page's enrollments)."""
        from dripper.store import repeats

        with self.store.reading() as conn:
            memory = repeats.latest(conn, campaign.name, [c.id for c in batch])
        found: list[tuple[int, NewEnrollment]] = []
        lapses: list[tuple[int, str]] = []
        for customer in batch:
            latest = memory.get(customer.id)
            matches = plan.when_matches(campaign, customer, now=now, warnings=report.warnings)
            step = plan.when_repeat(matches, None if latest is None else latest[:2])
            if step is None:
                continue
            action, number = step
            if action == "lapse":
                assert latest is not None
                lapses.append((customer.id, latest[2]))
                continue
            new = plan.when_enrollment(
                campaign,
                customer,
                now=now,
                fallback_tz=self.config.timezone,
                occurrence=plan.repeat_occurrence(number),
            )
            if new is not None:
                found.append((customer.id, new))
        if lapses:
            with self.store.transaction() as conn:
                repeats.mark_lapsed(conn, campaign.name, lapses, now=now)
        return found

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
        edition = plan.next_edition(campaign, runs, run)
        if plan.broadcast_passed(campaign.schedule, run, now):
            runs[run.isoformat()] = None
            report.warnings.append(f"{campaign.name}: broadcast of {run} not sent: its date passed")
        elif campaign.editions_dir is not None and edition is None:
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
                        holdout=plan.holdout_threshold(campaign.holdout or 0),
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


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""Planning, the event-driven half: events in; enrollments, goals, exits and outbox rows
out, in the same transaction as the event. The time-driven half (date and `when`
triggers, schedule runs, the spend ranking) is services/scheduling.py; `Planner.plan`
hands a pass to it, so the planner stays the one public face (`record_event(s)`, `plan`).

The adapter around the pure planner (`dripper.engine.plan`): it reads state from the store
in batches, asks the planner, and writes the answers back. It never reads the clock: every
call takes `now`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.model import Ending, EventDecisions, EventFacts, NewEnrollment
from dripper.services.report import Report
from dripper.services.scheduling import Scheduler

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
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


class Planner:
    """Enrolls customers and plans their sends, for events as they are recorded and for
    date triggers, `when` triggers and schedules on each pass."""

    def __init__(self, config: Config, store: Store, campaigns: Sequence[Campaign]) -> None:
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self._header_fields = _subject_event_fields(self.campaigns)
        self._convertible = frozenset(c.name for c in self.campaigns if c.goal is not None)
        self.scheduler = Scheduler(config, store, self.campaigns)

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
        from dripper.store import enrollments, recording, sheet

        recorded = recording.record_event(
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
        from dripper.store import enrollments, recording, sheet

        code = data.get("ref")
        if not isinstance(code, str) or not REFERRAL_CODE.fullmatch(code.strip().lower()):
            return None
        code = code.strip().lower()
        referrer = sheet.by_referral_code(conn, code)
        if referrer is None or referrer.id == buyer.id or "referred_by" in buyer.attributes:
            return None
        sheet.set_attributes(conn, buyer.id, {"referred_by": code})
        recorded = recording.record_event(
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

    # --- planning passes: the time-driven half (services/scheduling.py) ------------------

    def plan(self, now: datetime, *, force_scan: bool = False) -> Report:
        """Enroll whoever is due by the clock (`Scheduler.plan`)."""
        return self.scheduler.plan(now, force_scan=force_scan)

    def refresh_spend(self, now: datetime) -> bool:
        """Spend percentiles and ranks brought up to date (`Scheduler.refresh_spend`)."""
        return self.scheduler.refresh_spend(now)

    @property
    def set_based(self) -> bool:
        """Schedule runs planned by the database (False: a customer at a time in Python,
        which the tests compare with)."""
        return self.scheduler.set_based

    @set_based.setter
    def set_based(self, value: bool) -> None:
        self.scheduler.set_based = value


def _subject_event_fields(campaigns: Sequence[Campaign]) -> frozenset[str] | None:
    """The event fields any subject shows (None: possibly all of them)."""
    from dripper.campaigns.steps import subject_event_fields

    return subject_event_fields(
        subject for campaign in campaigns for step in campaign.steps for subject in step.subjects
    )



"""A year of the campaigns in memory: the planning and sending decisions of the daemon,
made by the same pure functions (`engine.plan`, `engine.timing`), with no database (DESIGN
10, issue 25). `dripper check` asks it what the sample customers would get over the next
year, each buying today; a test holds its timeline to the one the real runner gives on a
SQLite database (`dripper.simulate`), pass for pass.

What it keeps is what those decisions read: the customers (with the ranking the planner
refreshes), enrollments and their sends, each campaign's state (schedule runs and the
editions they used, the last trigger scan). What it leaves out, the samples never meet:
replies, bounces, goals reached by a later event, rendering (a template that does not
render is `check`'s own problem, reported before the simulation runs).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.model import (
    ActiveEnrollment,
    EnrollmentStatus,
    EventFacts,
    NewEnrollment,
    SendStatus,
    Verdict,
)
from dripper.engine.plan import EARLIEST_OFFSET, MAX_CATCH_UP, SCAN_EVERY
from dripper.engine.timing import schedule_runs

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Edition
    from dripper.config import Config
    from dripper.customers.model import Customer, CustomerData

STEP = timedelta(hours=6)  # longest jump between passes, as `dripper.simulate`


@dataclass(frozen=True)
class Sent:
    at: datetime
    to: str
    campaign: str
    step: str


@dataclass
class _Send:
    id: int
    enrollment: _Enrollment
    step: str
    due_at: datetime
    variant: int
    status: SendStatus
    reason: str | None = None
    next_attempt_at: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    sent_at: datetime | None = None


@dataclass
class _Enrollment:
    id: int
    customer_id: int
    campaign: str
    occurrence: str
    enrolled_at: datetime
    event: EventFacts | None
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE
    sends: list[_Send] = field(default_factory=list)
    held: bool = False  # held out of the campaign (`holdout:`)


class Simulation:
    """The daemon's passes over campaigns and customers held in memory."""

    def __init__(self, config: Config, campaigns: Sequence[Campaign]) -> None:
        self.config = config
        self.campaigns = list(campaigns)
        self.by_name = {c.name: c for c in self.campaigns}
        self.customers: dict[int, Customer] = {}
        self.enrollments: dict[tuple[int, str, str], _Enrollment] = {}
        self.lapsed: set[tuple[int, str, str]] = set()  # repeating `when` occurrences
        # each customer's latest `when` occurrence of a campaign: (its number, its key)
        self.latest_when: dict[tuple[int, str], tuple[int, tuple[int, str, str]]] = {}
        self.sends: list[_Send] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self._ids = iter(range(1, 1 << 62))
        # Not counted by the cap: transactional steps, and tasks and webhooks (no email).
        self._exempt = {
            (c.name, s.id)
            for c in self.campaigns
            for s in c.steps
            if s.transactional or s.personal
        }
        self._marketing = [c.name for c in self.campaigns if not c.transactional]

    # --- what comes in --------------------------------------------------------------------

    def add_customers(self, rows: Sequence[CustomerData], *, now: datetime) -> None:
        """Customers as an import would add them (subscribed unless they say otherwise)."""
        from dripper.customers.model import Customer, Status

        for row in rows:
            cid = next(self._ids)
            self.customers[cid] = Customer(
                id=cid,
                email=row.email,
                first_name=row.first_name or "",
                last_name=row.last_name or "",
                timezone=row.timezone,
                locale=row.locale,
                tags=tuple(row.tags or ()),
                attributes=dict(row.attributes),
                status=row.marketing or Status.SUBSCRIBED,
                created_at=now,
            )

    def purchase(self, email: str, *, at: datetime, amount: Decimal, now: datetime) -> None:
        """A purchase recorded and planned, as `Planner.record_events` does."""
        cid = next(i for i, c in self.customers.items() if c.email == email)
        old = self.customers[cid]
        customer = replace(
            old,
            purchases=old.purchases + 1,
            total_spent=old.total_spent + amount,
            first_purchase_at=min(filter(None, (old.first_purchase_at, at))),
            last_purchase_at=max(filter(None, (old.last_purchase_at, at))),
        )
        self.customers[cid] = customer
        event = EventFacts(next(self._ids), "purchase", at, {"amount": str(amount)})
        active = [
            ActiveEnrollment(e.id, e.campaign, e.occurrence, e.enrolled_at, None)
            for e in self.enrollments.values()
            if e.customer_id == cid and e.status is EnrollmentStatus.ACTIVE
        ]
        decisions = plan.on_event(
            self.campaigns, customer, event, active, fallback_tz=self.config.timezone, now=now
        )
        self.warnings += decisions.warnings
        for new in decisions.enroll:
            self._save(cid, new, event)

    # --- a pass ---------------------------------------------------------------------------

    def run_once(self, now: datetime) -> list[Sent]:
        """Plan, then send what is due: one pass of the daemon."""
        self._plan(now)
        return self._send_due(now)

    def next_due(self) -> datetime | None:
        planned = [s.next_attempt_at for s in self.sends if s.status is SendStatus.PLANNED]
        return min(planned, default=None)

    def timeline(self, now: datetime, days: int) -> list[Sent]:
        """Every send of the next `days` days, pass after pass (as `dripper.simulate`)."""
        sent: list[Sent] = []
        end = now + timedelta(days=days)
        moment = now
        while moment <= end:
            sent += self.run_once(moment)
            upcoming = self.next_due()
            jump = moment + STEP
            if upcoming is not None and moment < upcoming < jump:
                jump = upcoming
            moment = jump
        return sent

    # --- planning (services.planning) -----------------------------------------------------

    def _plan(self, now: datetime) -> None:
        from dripper.campaigns import DateTrigger, WhenTrigger

        self._rank()
        for campaign in self.campaigns:
            if campaign.schedule is not None:
                self._schedule(campaign, now)
            elif isinstance(campaign.trigger, DateTrigger | WhenTrigger):
                self._scan(campaign, now)

    def _rank(self) -> None:
        """`customer.spend_percentile` and `spend_rank` (store/spend.py's SQL, in Python)."""
        people = list(self.customers.values())
        spends = sorted(c.total_spent for c in people)
        count = len(people)
        for customer in people:
            below = _count_below(spends, customer.total_spent)
            above = sum(1 for s in spends if s > customer.total_spent)
            percentile = (100 * below) // (count - 1) if count > 1 else 0
            rank = above + 1 if customer.total_spent > 0 else None
            self.customers[customer.id] = replace(
                customer, spend_percentile=percentile, spend_rank=rank
            )

    def _scan(self, campaign: Campaign, now: datetime) -> None:
        from dripper.campaigns import DateTrigger, WhenTrigger

        state = self.state.setdefault(campaign.name, {})
        last = state.get("last_scan")
        trigger = campaign.trigger
        time_dependent = isinstance(trigger, DateTrigger) or (
            isinstance(trigger, WhenTrigger) and "now" in trigger.condition.names
        )
        if last is not None and time_dependent and now - last < SCAN_EVERY:
            return
        enroll: Any = (
            functools.partial(plan.date_enrollment, max_age=MAX_CATCH_UP)
            if isinstance(trigger, DateTrigger)
            else plan.when_enrollment
        )
        repeating = isinstance(trigger, WhenTrigger) and trigger.repeat
        for customer in list(self.customers.values()):
            if not customer.subscribed:
                continue
            if repeating:
                self._repeat(campaign, customer, now)
                continue
            new = enroll(
                campaign,
                customer,
                now=now,
                fallback_tz=self.config.timezone,
                warnings=self.warnings,
            )
            if new is not None:
                self._save(customer.id, new, None)
        state["last_scan"] = now

    def _repeat(self, campaign: Campaign, customer: Customer, now: datetime) -> None:
        """A repeating `when:` for one customer, as `Scheduler._repeat` does it."""
        number, key = self.latest_when.get((customer.id, campaign.name), (0, None))
        latest = None if key is None else (number, key in self.lapsed)
        matches = plan.when_matches(campaign, customer, now=now, warnings=self.warnings)
        step = plan.when_repeat(matches, latest)
        if step is None:
            return
        action, number = step
        if action == "lapse":
            assert key is not None
            self.lapsed.add(key)
            return
        new = plan.when_enrollment(
            campaign,
            customer,
            now=now,
            fallback_tz=self.config.timezone,
            occurrence=plan.repeat_occurrence(number),
        )
        if new is not None:
            self._save(customer.id, new, None)

    def _schedule(self, campaign: Campaign, now: datetime) -> None:
        assert campaign.schedule is not None
        state = self.state.setdefault(campaign.name, {})
        runs: dict[str, str | None] = state.setdefault("runs", {})
        last = max((date.fromisoformat(r) for r in runs), default=None)
        until = (now + EARLIEST_OFFSET).date()
        due = schedule_runs(campaign.schedule.starting, campaign.schedule.every, last, until)
        if not due:
            return
        for missed in due[:-1]:
            runs[missed.isoformat()] = None
            self.warnings.append(f"{campaign.name}: run of {missed} missed (daemon not running)")
        run = due[-1]
        if plan.broadcast_passed(campaign.schedule, run, now):
            runs[run.isoformat()] = None
            self.warnings.append(f"{campaign.name}: broadcast of {run} not sent: its date passed")
            return
        edition = plan.next_edition(campaign, runs, run)
        if campaign.editions_dir is not None and edition is None:
            runs[run.isoformat()] = None
            self.warnings.append(
                f"{campaign.name}: run of {run} skipped: no edition left in "
                f"{campaign.editions_dir} (add a Markdown file; never an empty newsletter)"
            )
            return
        runs[run.isoformat()] = edition.slug if edition is not None else ""
        for customer in list(self.customers.values()):
            new = plan.schedule_enrollment(
                campaign, customer, run, fallback_tz=self.config.timezone, now=now
            )
            if new is not None:
                self._save(customer.id, new, None)

    def _save(self, cid: int, new: NewEnrollment, event: EventFacts | None) -> None:
        """An enrollment and its sends, unless it exists (bulk.save_enrollments)."""
        key = (cid, new.campaign, new.occurrence)
        if key in self.enrollments:
            return
        enrollment = _Enrollment(
            next(self._ids), cid, new.campaign, new.occurrence, new.enrolled_at, event,
            held=new.held,
        )  # fmt: skip
        self.enrollments[key] = enrollment
        number = plan.occurrence_number(new.occurrence)
        latest = self.latest_when.get((cid, new.campaign))
        if number is not None and (latest is None or number > latest[0]):
            self.latest_when[(cid, new.campaign)] = (number, key)
        for planned in new.sends:
            skipped = planned.skip_reason is not None
            send = _Send(
                next(self._ids),
                enrollment,
                planned.step,
                planned.due_at,
                planned.variant,
                SendStatus.SKIPPED if skipped else SendStatus.PLANNED,
                planned.skip_reason,
                planned.due_at,
            )
            enrollment.sends.append(send)
            self.sends.append(send)

    # --- sending (services.delivery) ------------------------------------------------------

    def _send_due(self, now: datetime) -> list[Sent]:
        sent: list[Sent] = []
        while True:
            due = sorted(
                (
                    s
                    for s in self.sends
                    if s.status is SendStatus.PLANNED and s.next_attempt_at <= now
                ),
                key=lambda s: (s.next_attempt_at, s.id),
            )[: self.config.batch_size]
            if not due:
                return sent
            sent += self._deliver(due, now)

    def _deliver(self, due: list[_Send], now: datetime) -> list[Sent]:
        cap = self.config.max_per_customer
        recent: dict[int, list[datetime]] = {}
        if cap is not None:
            since = now - cap.period
            for s in self.sends:
                e = s.enrollment
                if (
                    s.status is SendStatus.SENT
                    and s.sent_at is not None
                    and s.sent_at > since
                    and e.campaign in self._marketing
                    and (e.campaign, s.step) not in self._exempt
                ):
                    recent.setdefault(e.customer_id, []).append(s.sent_at)
        sent: list[Sent] = []
        for send in due:
            enrollment = send.enrollment
            campaign = self.by_name.get(enrollment.campaign)
            step = campaign.step(send.step) if campaign is not None else None
            if campaign is None or step is None:
                send.status, send.reason = SendStatus.CANCELLED, "gone"
                continue
            customer = self.customers[enrollment.customer_id]
            edition = (
                _edition(campaign, self.state.get(campaign.name, {}), enrollment.occurrence)
                if campaign.editions
                else None
            )
            ctx = plan.context(customer, campaign, now, enrollment.event, edition)
            decision = plan.send_decision(
                campaign=campaign,
                step=step,
                customer=customer,
                suppressed=False,
                enrollment_status=enrollment.status,
                ctx=ctx,
                now=now,
                fallback_tz=self.config.timezone,
                quiet_hours=self.config.quiet_hours,
                cap=cap,
                recent_sends=recent.get(customer.id, []),
            )
            if decision.verdict is Verdict.SEND and enrollment.held and not step.transactional:
                send.status, send.reason = SendStatus.HELD, "held out"
            elif decision.verdict is Verdict.SEND and step.personal:
                send.status, send.sent_at = SendStatus.SENT, now  # a task made, no email
            elif decision.verdict is Verdict.SEND:
                if not (campaign.transactional or step.transactional):
                    recent.setdefault(customer.id, []).append(now)
                send.status, send.sent_at = SendStatus.SENT, now
                sent.append(Sent(now, customer.email, campaign.name, step.id))
            elif decision.verdict is Verdict.DEFER:
                assert decision.until is not None
                send.next_attempt_at, send.reason = decision.until, decision.reason
            else:
                send.status = (
                    SendStatus.SKIPPED if decision.verdict is Verdict.SKIP else SendStatus.CANCELLED
                )
                send.reason = decision.reason
        for enrollment in {id(s.enrollment): s.enrollment for s in due}.values():
            pending = (SendStatus.PLANNED, SendStatus.SENDING)
            if enrollment.status is EnrollmentStatus.ACTIVE and not any(
                s.status in pending for s in enrollment.sends
            ):
                enrollment.status = EnrollmentStatus.COMPLETED
        return sent


def _count_below(spends: Sequence[Decimal], value: Decimal) -> int:
    """How many spends are strictly lower (percent_rank's rank - 1, ties alike)."""
    import bisect

    return bisect.bisect_left(spends, value)


def _edition(campaign: Campaign, state: Mapping[str, Any], occurrence: str) -> Edition | None:
    slug = state.get("runs", {}).get(occurrence)
    return campaign.edition(slug) if slug else None


"""Planning decisions: who is enrolled in what, when each step falls due, what an event
ends, and whether a due send goes out now. Pure: no I/O, `now` is always an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from dripper.engine.dates import as_date
from dripper.engine.model import (
    ActiveEnrollment,
    Ending,
    EnrollmentStatus,
    EventDecisions,
    EventFacts,
    NewEnrollment,
    PlannedSend,
    SendDecision,
    Verdict,
)
from dripper.engine.timing import after_quiet_hours, anniversary, due_at, start_of_day, zone

if TYPE_CHECKING:
    from datetime import time

    from dripper.campaigns import Campaign, Edition, Schedule, Step
    from dripper.config import FrequencyCap
    from dripper.customers.model import Customer

# A send planned more than this long after it fell due (an event recorded with an old `--at`,
# a birthday noticed days late) is recorded as skipped rather than sent out of context.
STALE_AFTER = timedelta(days=1)
# The planning pass's cadence: the daemon's (services/scheduling.py) and `dripper check`'s
# in-memory year (engine/simulation.py) alike.
SCAN_EVERY = timedelta(minutes=15)  # date and time-dependent `when` triggers, at most
EARLIEST_OFFSET = timedelta(hours=14)  # UTC+14: where a run day begins first
MAX_CATCH_UP = timedelta(days=7)  # older date-trigger days are history, not news


def variant_for(email: str, campaign: str, step: str, count: int) -> int:
    """A stable A/B variant per customer and step: the same on every run and machine."""
    if count <= 1:
        return 0
    digest = hashlib.sha256(f"{campaign}\0{step}\0{email}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


# The holdout's hash (DESIGN 17): `variant_for` with a "step" no step id can be (ids are
# [a-z0-9-]) and 10,000 buckets, so a share is exact to 0.01%. The set-based planner
# (store/schedule_runs.py) computes the same in SQL.
HOLDOUT_KEY = "(holdout)"
HOLDOUT_BUCKETS = 10_000


def held_out(email: str, campaign: Campaign) -> bool:
    """Whether the customer is in the campaign's holdout: stable per customer and
    campaign, the same on every run and machine, independent of the A/B variants."""
    if not campaign.holdout:
        return False
    bucket = variant_for(email, campaign.name, HOLDOUT_KEY, HOLDOUT_BUCKETS)
    return bucket < holdout_threshold(campaign.holdout)


def holdout_threshold(percent: float) -> int:
    """The buckets (of 10,000) held out for `percent`."""
    return round(percent * HOLDOUT_BUCKETS / 100)


def context(
    customer: Customer,
    campaign: Campaign,
    now: datetime,
    event: EventFacts | None = None,
    edition: Edition | None = None,
) -> dict[str, Any]:
    """What expressions see (DESIGN 2): customer, event, now, campaign, edition."""
    return {
        "customer": customer.as_context(),
        "event": event.as_context() if event is not None else None,
        "now": now,
        "campaign": {"name": campaign.name, "description": campaign.description},
        "edition": None if edition is None else {"title": edition.title, "slug": edition.slug},
    }


def plan_enrollment(
    campaign: Campaign,
    customer: Customer,
    *,
    occurrence: str,
    enrolled_at: datetime,
    event_id: int | None,
    tz: tzinfo,
    now: datetime,
) -> NewEnrollment:
    """An enrollment and one planned send per step, each due at its offset and local time.
    A step that fell due long before `now` is planned as skipped (see STALE_AFTER)."""
    sends = _sends(
        campaign,
        enrolled_at,
        tz,
        now,
        lambda step: variant_for(customer.email, campaign.name, step.id, len(step.subjects)),
    )
    return NewEnrollment(
        campaign.name,
        occurrence,
        enrolled_at,
        event_id,
        sends,
        held=held_out(customer.email, campaign),
    )


def _sends(
    campaign: Campaign,
    enrolled_at: datetime,
    tz: tzinfo,
    now: datetime,
    variant: Callable[[Step], int],
) -> tuple[PlannedSend, ...]:
    sends = []
    for step in campaign.steps:
        due = due_at(enrolled_at, step.after, step.send_at, tz)
        late = now - due > STALE_AFTER
        sends.append(
            PlannedSend(
                step=step.id,
                due_at=due,
                variant=variant(step),
                skip_reason=f"too late: due {due:%Y-%m-%d %H:%M} UTC, planned later"
                if late
                else None,
                kind=step.kind,
            )
        )
    return tuple(sends)


def _holds(expression: Any, ctx: Mapping[str, Any], warnings: list[str]) -> bool:
    """Evaluate a condition; an error is a warning and counts as false (never a crash)."""
    from dripper.campaigns import ExpressionError

    try:
        return bool(expression.evaluate(ctx))
    except ExpressionError as exc:
        if unknown_compared(exc):
            return False  # a value not known yet (no prediction before a fit): no match
        warnings.append(str(exc))
        return False


def unknown_compared(exc: Exception) -> bool:
    """`customer.p_alive < 0.5` while p_alive is none: an ordering with a missing value,
    false as SQL would have it, and not worth a warning per customer and scan."""
    cause = exc.__cause__
    return isinstance(cause, TypeError) and "'NoneType'" in str(cause) and (
        "not supported between instances" in str(cause)
    )


def on_event(
    campaigns: Sequence[Campaign],
    customer: Customer,
    event: EventFacts,
    active: Iterable[ActiveEnrollment],
    *,
    fallback_tz: str,
    now: datetime,
) -> EventDecisions:
    """What recording `event` does: goals reached, exits, and new enrollments.

    `customer` is the customer as it is right after the event (derived fields included), so
    `if: customer.purchases == 1` sees the purchase being recorded.
    """
    from dripper.campaigns import EventTrigger, WhenTrigger

    by_name = {c.name: c for c in campaigns}
    warnings: list[str] = []
    ends: list[Ending] = []
    for enrollment in active:
        campaign = by_name.get(enrollment.campaign)
        if campaign is None:
            continue
        goal = campaign.goal
        if (
            goal is not None
            and goal.event == event.type
            and event.id != enrollment.event_id
            and event.at >= enrollment.enrolled_at
            and (goal.within is None or event.at <= goal.within.add(enrollment.enrolled_at))
        ):
            ends.append(
                Ending(
                    enrollment.id,
                    EnrollmentStatus.CONVERTED,
                    f"goal reached: {event.type}",
                    event.id,
                    enrollment.last_sent_step,
                )
            )
        elif event.type in campaign.exit_on and enrollment.status is EnrollmentStatus.ACTIVE:
            ends.append(
                Ending(enrollment.id, EnrollmentStatus.EXITED, f"exit on {event.type}", event.id)
            )

    enroll: list[NewEnrollment] = []
    if not customer.unsubscribed:
        tz = zone(customer.timezone, fallback_tz)
        for campaign in campaigns:
            trigger = campaign.trigger
            if not (customer.subscribed or _sends_transactional(campaign)):
                continue  # marketing only, and they did not opt in
            if isinstance(trigger, EventTrigger) and trigger.event == event.type:
                ctx = context(customer, campaign, now, event)
                if trigger.condition is None or _holds(trigger.condition, ctx, warnings):
                    enroll.append(
                        plan_enrollment(
                            campaign,
                            customer,
                            occurrence=f"event:{event.id}",
                            enrolled_at=event.at,
                            event_id=event.id,
                            tz=tz,
                            now=now,
                        )
                    )
            elif isinstance(trigger, WhenTrigger):
                planned = when_enrollment(campaign, customer, now=now, fallback_tz=fallback_tz)
                if planned is not None:
                    enroll.append(planned)
    return EventDecisions(tuple(enroll), tuple(ends), tuple(warnings))


def _sends_transactional(campaign: Campaign) -> bool:
    """Whether any email of the campaign is transactional (a receipt-like thank-you): the
    part a customer who did not opt in to marketing still gets (DESIGN 13)."""
    return campaign.transactional or any(step.transactional for step in campaign.steps)


def when_enrollment(
    campaign: Campaign,
    customer: Customer,
    *,
    now: datetime,
    fallback_tz: str,
    warnings: list[str] | None = None,
    occurrence: str = "once",
) -> NewEnrollment | None:
    """`trigger: {when: ...}`: enroll once, the moment the customer is seen to match (a
    repeating trigger passes the occurrence `when_repeat` decided)."""
    if not when_matches(campaign, customer, now=now, warnings=warnings):
        return None
    return plan_enrollment(
        campaign,
        customer,
        occurrence=occurrence,
        enrolled_at=now,
        event_id=None,
        tz=zone(customer.timezone, fallback_tz),
        now=now,
    )


def when_matches(
    campaign: Campaign, customer: Customer, *, now: datetime, warnings: list[str] | None = None
) -> bool:
    """The customer may get the campaign and its `when:` holds for them now."""
    from dripper.campaigns import WhenTrigger

    trigger = campaign.trigger
    assert isinstance(trigger, WhenTrigger)
    if not customer.subscribed:
        return False
    return _holds(trigger.condition, context(customer, campaign, now), warnings or [])


def when_repeat(matches: bool, latest: tuple[int, bool] | None) -> tuple[str, int] | None:
    """`when: ..., repeat: true` (DESIGN 14): what one customer's scan does, given whether
    they match now and their latest occurrence (its number, and whether they have been
    seen not matching since it began). ("enroll", k): a new occurrence `when:k`; ("lapse",
    k): mark occurrence k lapsed, so the next match starts k+1; None: nothing."""
    if matches:
        if latest is None:
            return ("enroll", 1)
        number, lapsed = latest
        return ("enroll", number + 1) if lapsed else None
    if latest is not None and not latest[1]:
        return ("lapse", latest[0])
    return None


def repeat_occurrence(number: int) -> str:
    return f"when:{number}"


def broadcast_passed(schedule: Schedule, run: date, now: datetime) -> bool:
    """A one-off broadcast (`once:`) first seen more than a day after its date: never sent
    (a shop's old announcement must not go out late; `check` warns of a past date)."""
    return schedule.every is None and run < (now - timedelta(days=1)).date()


def occurrence_number(occurrence: str) -> int | None:
    """`when:3` -> 3, `once` (a `when` before it repeated) -> 1; else no `when` occurrence."""
    if occurrence == "once":
        return 1
    head, _, tail = occurrence.partition(":")
    return int(tail) if head == "when" and tail.isdigit() else None


def date_enrollment(
    campaign: Campaign,
    customer: Customer,
    *,
    now: datetime,
    fallback_tz: str,
    warnings: list[str] | None = None,
    max_age: timedelta | None = None,
) -> NewEnrollment | None:
    """`trigger: {date: ..., annually: true}`: the enrollment due by `now`, if any.

    The moment is the start of that day in the customer's zone, whenever the daemon notices
    it. An annual trigger first fires on the first anniversary after the date itself (a first
    purchase is not its own anniversary; a date in the future never fires early). A date
    that passed before the customer was added is not greeted belatedly, and a
    day older than `max_age` is history, not news (a daemon started in December does not
    enroll every birthday since January).
    """
    from dripper.campaigns import DateTrigger, ExpressionError

    trigger = campaign.trigger
    assert isinstance(trigger, DateTrigger)
    if not customer.subscribed:
        return None
    try:
        value = trigger.date.evaluate(context(customer, campaign, now))
    except ExpressionError as exc:
        if warnings is not None:
            warnings.append(str(exc))
        return None
    original = as_date(value)
    if original is None:
        return None
    tz = zone(customer.timezone, fallback_tz)
    today = now.astimezone(tz).date()
    day = anniversary(original, today.year) if trigger.annually else original
    if trigger.annually and day.year <= original.year:
        return None  # the date itself is not its own anniversary; a future date waits
    if day > today or customer.created_at.astimezone(tz).date() > day:
        return None
    if max_age is not None and today - day > max_age:
        return None
    occurrence = str(day.year) if trigger.annually else day.isoformat()
    return plan_enrollment(
        campaign,
        customer,
        occurrence=occurrence,
        enrolled_at=start_of_day(day, tz),
        event_id=None,
        tz=tz,
        now=now,
    )


def schedule_enrollment(
    campaign: Campaign, customer: Customer, run: date, *, fallback_tz: str, now: datetime
) -> NewEnrollment | None:
    """One run of a recurring campaign for one customer: from the start of the run day in
    the customer's zone, so a 09:00 step is 09:00 wherever they are."""
    if not customer.subscribed:
        return None
    tz = zone(customer.timezone, fallback_tz)
    return plan_enrollment(
        campaign,
        customer,
        occurrence=run.isoformat(),
        enrolled_at=start_of_day(run, tz),
        event_id=None,
        tz=tz,
        now=now,
    )


def next_edition(campaign: Campaign, runs: Mapping[str, str | None], run: date) -> Edition | None:
    """A newsletter run's edition: the first of the campaign's not used by an earlier run
    (`runs`: run -> edition slug) and not held back past `run`; None when none is left."""
    used = {slug for slug in runs.values() if slug}
    for edition in campaign.editions:
        if edition.slug in used:
            continue
        if edition.not_before is not None and edition.not_before > run:
            continue
        return edition
    return None


def send_decision(
    *,
    campaign: Campaign,
    step: Step,
    customer: Customer,
    suppressed: bool,
    enrollment_status: EnrollmentStatus,
    ctx: Mapping[str, Any],
    now: datetime,
    fallback_tz: str,
    quiet_hours: tuple[time, time] | None,
    cap: FrequencyCap | None,
    recent_sends: Sequence[datetime],
    suppression: str | None = None,
) -> SendDecision:
    """The checks made when a send falls due (DESIGN 7), in order of finality.

    `recent_sends` are this customer's non-transactional sends within the cap period. A
    transactional campaign or step (a receipt-like thank-you) ignores the cap and quiet hours.
    A task or a webhook step (DESIGN 16) is not an email: `personal_decision` decides it.
    """
    if step.personal:
        return personal_decision(
            campaign=campaign,
            step=step,
            suppression=suppression,
            enrollment_status=enrollment_status,
            ctx=ctx,
        )
    if suppressed or customer.unsubscribed:
        reason = "unsubscribed" if customer.unsubscribed else "suppressed"
        return SendDecision(Verdict.CANCEL, reason)
    if enrollment_status is not EnrollmentStatus.ACTIVE:
        return SendDecision(Verdict.CANCEL, f"enrollment {enrollment_status.value}")
    if not customer.subscribed and not (campaign.transactional or step.transactional):
        return SendDecision(Verdict.SKIP, "not subscribed to marketing")
    if not customer.wants(campaign.topic):
        return SendDecision(Verdict.SKIP, f"left the topic {campaign.topic}")
    warnings: list[str] = []
    if step.condition is not None and not _holds(step.condition, ctx, warnings):
        reason = warnings[0] if warnings else f"if: {step.condition.source}"
        return SendDecision(Verdict.SKIP, reason)
    if campaign.audience is not None and not _holds(campaign.audience, ctx, warnings):
        reason = warnings[0] if warnings else f"audience: {campaign.audience.source}"
        return SendDecision(Verdict.SKIP, reason)
    if campaign.transactional or step.transactional:
        return SendDecision(Verdict.SEND)
    tz = zone(customer.timezone, fallback_tz)
    until = now
    if cap is not None:
        window = sorted(t for t in recent_sends if t > now - cap.period)
        if len(window) >= cap.count:
            until = window[len(window) - cap.count] + cap.period
    # quiet hours last: a cap deferral may land in them
    until = after_quiet_hours(until, quiet_hours, tz)
    if until > now:
        return SendDecision(Verdict.DEFER, "frequency cap or quiet hours", until)
    return SendDecision(Verdict.SEND)


# What ends a task or a webhook step: a complaint (the person wants nothing more from the
# shop) or an erasure. An unsubscribe from email, a bounce or a manual suppression does not:
# a card is not an email, and the task says they left the emails.
ENDS_PERSONAL = frozenset({"complained", "forgotten"})


def personal_decision(
    *,
    campaign: Campaign,
    step: Step,
    suppression: str | None,
    enrollment_status: EnrollmentStatus,
    ctx: Mapping[str, Any],
) -> SendDecision:
    """A task or a webhook step that fell due: planned, timed and checked (`if`, audience,
    the enrollment's end) like an email; no consent to email, topic, cap or quiet hours."""
    if suppression in ENDS_PERSONAL:
        return SendDecision(Verdict.CANCEL, f"suppressed: {suppression}")
    if enrollment_status is not EnrollmentStatus.ACTIVE:
        return SendDecision(Verdict.CANCEL, f"enrollment {enrollment_status.value}")
    warnings: list[str] = []
    if step.condition is not None and not _holds(step.condition, ctx, warnings):
        return SendDecision(
            Verdict.SKIP, warnings[0] if warnings else f"if: {step.condition.source}"
        )
    if campaign.audience is not None and not _holds(campaign.audience, ctx, warnings):
        reason = warnings[0] if warnings else f"audience: {campaign.audience.source}"
        return SendDecision(Verdict.SKIP, reason)
    return SendDecision(Verdict.SEND)


@dataclass(frozen=True)
class ZonePlan:
    """A schedule run for every customer of one time zone (the set-based planner writes it
    for all of them in one statement): when they are enrolled and each step's send."""

    timezone: str  # the customers' column value ("" for none): what the SQL joins on
    enrolled_at: datetime
    sends: tuple[PlannedSend, ...]  # variant: how many subjects the step has (hashed in SQL)


def schedule_zone_plans(
    campaign: Campaign,
    run: date,
    timezones: Iterable[str | None],
    *,
    fallback_tz: str,
    now: datetime,
) -> list[ZonePlan]:
    """`schedule_enrollment` for each distinct time-zone value instead of each customer:
    everything in an enrollment but the customer's A/B variant depends on the zone alone
    (a missing or unknown zone falls back as `zone` does)."""
    found = []
    for name in sorted({t or "" for t in timezones}):
        tz = zone(name or None, fallback_tz)
        enrolled_at = start_of_day(run, tz)
        sends = _sends(campaign, enrolled_at, tz, now, lambda step: len(step.subjects))
        found.append(ZonePlan(name, enrolled_at, sends))
    return found

"""What `dripper check` learns by trying each campaign's expressions on the sample
customers: an expression the sandbox refuses at run time (`customer.__class__`,
`range(10**9)|list`) fails here first, a `date:` trigger on a column nobody has
(`customer.brithday`) is named with a "did you mean", and sample values that are not
dates are listed.

Pure: campaigns, sample customers and `now` in; problems and warnings out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from jinja2 import UndefinedError

from dripper.campaigns.expressions import Expression, ExpressionError
from dripper.campaigns.model import Campaign, DateTrigger, EventTrigger, Step, WhenTrigger
from dripper.customers.model import Customer
from dripper.engine.dates import BadDate, date_problem, summarize, unknown_name_problem
from dripper.engine.model import EventFacts
from dripper.engine.plan import context, unknown_compared
from dripper.errors import Problem


@dataclass(frozen=True)
class SampleFindings:
    problems: list[Problem]
    warnings: list[str]


def check_on_samples(
    campaigns: Sequence[Campaign],
    samples: Sequence[Customer],
    *,
    now: datetime,
    lines: Mapping[str, int] | None = None,
) -> SampleFindings:
    """Evaluate every expression of every campaign for every sample customer. `lines`:
    where each sample's row is in the sample sheet, for the messages."""
    problems: list[Problem] = []
    warnings: list[str] = []
    known = _known_names(samples)
    for campaign in campaigns:
        for key, expression in _expressions(campaign):
            problem = _first_failure(campaign, expression, key, samples, now)
            if problem is not None:
                problems.append(problem)
        trigger = campaign.trigger
        if isinstance(trigger, DateTrigger) and samples:
            unknown = unknown_name_problem(trigger.date.source, known)
            if unknown is not None:
                problems.append(Problem(campaign.file, trigger.date.line, "trigger.date", unknown))
            else:
                warnings += _bad_dates(campaign, trigger, samples, now, lines or {})
    return SampleFindings(problems, warnings)


def _known_names(samples: Sequence[Customer]) -> set[str]:
    names: set[str] = set()
    for customer in samples:
        names.update(customer.as_context())
    return names


def _expressions(campaign: Campaign) -> list[tuple[str, Expression]]:
    found: list[tuple[str, Expression]] = []
    trigger = campaign.trigger
    if isinstance(trigger, EventTrigger) and trigger.condition is not None:
        found.append(("trigger.if", trigger.condition))
    elif isinstance(trigger, WhenTrigger):
        found.append(("trigger.when", trigger.condition))
    elif isinstance(trigger, DateTrigger):
        found.append(("trigger.date", trigger.date))
    if campaign.audience is not None:
        found.append(("audience", campaign.audience))
    for index, step in enumerate(campaign.steps):
        if step.condition is not None:
            found.append((f"steps[{index}].if", step.condition))
    return found


def sample_event(campaign: Campaign, now: datetime) -> EventFacts | None:
    """The event previews, `check` and `send-test` give an event-triggered campaign's
    emails: its `sample_event:`, else one with empty data (so templates read event fields
    with `|default`); None for any other campaign, whose emails have no event."""
    trigger = campaign.trigger
    if not isinstance(trigger, EventTrigger):
        return None
    sample = campaign.sample_event
    if sample is None:
        return EventFacts(0, trigger.event, now, {}, None)
    return EventFacts(0, trigger.event, now, dict(sample.data), sample.id)


def reaches(campaign: Campaign, step: Step, customer: Customer, *, now: datetime) -> bool:
    """Whether this sample customer could get this step (DESIGN 14: `check` renders a
    step only for them): marketing they agreed to, a `date:` they have, the audience and
    the step's `if` holding. An event's `if` and a `when:` may hold later (a second
    purchase, a lapse), so they never leave a sample out; an expression that fails does
    not either (its failure is reported on its own)."""
    if not (customer.subscribed or campaign.transactional or step.transactional):
        return False
    event = sample_event(campaign, now)
    ctx = context(
        customer, campaign, now, event, campaign.editions[0] if campaign.editions else None
    )
    trigger = campaign.trigger
    tests: list[Expression] = []
    if campaign.audience is not None:
        tests.append(campaign.audience)
    if step.condition is not None:
        tests.append(step.condition)
    for expression in tests:
        try:
            if not expression.evaluate(ctx):
                return False
        except ExpressionError:
            continue
    if isinstance(trigger, DateTrigger):
        try:
            return bool(trigger.date.evaluate(ctx))
        except ExpressionError:
            return True
    return True


def _first_failure(
    campaign: Campaign,
    expression: Expression,
    key: str,
    samples: Sequence[Customer],
    now: datetime,
) -> Problem | None:
    """The expression's first failure on a sample, and on how many samples it fails."""
    event = sample_event(campaign, now)
    edition = campaign.editions[0] if campaign.editions else None
    failures: list[tuple[Customer, ExpressionError]] = []
    for customer in samples:
        try:
            expression.evaluate(context(customer, campaign, now, event, edition))
        except ExpressionError as exc:
            # A sample event carries only what a sample can know: a field a real event
            # brings (`event.data.size`) is not a mistake of the campaign.
            if isinstance(exc.__cause__, UndefinedError) and "event" in expression.names:
                continue
            if unknown_compared(exc):  # a prediction before the first fit: no match
                continue
            failures.append((customer, exc))
    if not failures:
        return None
    customer, error = failures[0]
    others = f" and {len(failures) - 1} other(s)" if len(failures) > 1 else ""
    return Problem(
        campaign.file,
        expression.line,
        key,
        f"{error.reason} (for sample customer {customer.email}{others}; it would fail at "
        "send time too)",
    )


def _bad_dates(
    campaign: Campaign,
    trigger: DateTrigger,
    samples: Sequence[Customer],
    now: datetime,
    lines: Mapping[str, int],
) -> list[str]:
    bad: list[BadDate] = []
    for customer in samples:
        try:
            value = trigger.date.evaluate(context(customer, campaign, now))
        except ExpressionError:
            continue  # reported by _first_failure
        problem = date_problem(value)
        if problem is not None:
            bad.append(BadDate(customer.email, lines.get(customer.email), problem))
    if not bad:
        return []
    column = trigger.date.source
    return [f"{campaign.file}: " + summarize(column, bad, users=f"campaign {campaign.name}")]

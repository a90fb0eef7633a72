"""What a campaign file means once loaded: immutable values, no I/O.

Durations are `Span`s (a fixed length, or calendar months), times of day are naive
`time`s (read in each customer's zone by the planner), dates are `date`s. Line numbers are
kept where a later error must point back at the file (expressions carry their own).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

from dripper.campaigns.expressions import Expression
from dripper.timeparse import Span


@dataclass(frozen=True)
class EventTrigger:
    """`trigger: {event: purchase, if: ...}`: enroll each time the event is recorded (and the
    condition, evaluated then, holds)."""

    event: str
    condition: Expression | None = None


@dataclass(frozen=True)
class DateTrigger:
    """`trigger: {date: customer.birthday, annually: true}`: enroll on the day the expression
    names (a date or an ISO `YYYY-MM-DD` string), once, or once a year."""

    date: Expression
    annually: bool = False


@dataclass(frozen=True)
class WhenTrigger:
    """`trigger: {when: ...}`: enroll once, when the customer is first seen to match; with
    `repeat: true` again each time they start to match after having stopped (DESIGN 14)."""

    condition: Expression
    repeat: bool = False


Trigger = EventTrigger | DateTrigger | WhenTrigger


@dataclass(frozen=True)
class Schedule:
    """`schedule: {every: 6w, starting: 2027-01-05}`: a run on `starting` and every `every`
    after it; each run enrolls the audience."""

    every: Span | None  # None: `once:` a broadcast on `starting`, never again
    starting: date

    @property
    def once(self) -> bool:
        return self.every is None


@dataclass(frozen=True)
class Goal:
    """A later event of type `event` (within `within` of enrollment, if set) converts the
    enrollment and ends it."""

    event: str
    within: Span | None = None


@dataclass(frozen=True)
class Webhook:
    """`webhook: {url: ..., body: {...}}` (DESIGN 16): a JSON POST handing the step to another
    system; every string in `body` is a template rendered per customer."""

    url: str
    body: Mapping[str, Any]
    line: int  # of `webhook:`, for check's messages


@dataclass(frozen=True)
class Step:
    """One step of a campaign, due `after` the enrollment (not the previous step; 0 when the
    file leaves it out): an email (`template:`), a task for a person (`task:`) or a webhook
    (`webhook:`)."""

    id: str
    after: Span
    send_at: time | None
    condition: Expression | None
    subjects: tuple[str, ...]  # more than one: A/B variants
    template: str  # relative to the templates folder
    line: int
    # A receipt-like email (a first-purchase thank-you) that must go at once: it ignores the
    # frequency cap and quiet hours, never an unsubscribe or a suppression.
    transactional: bool = False
    # DESIGN 16: `task:` (a template of one line), its `assignee` (a key of [tasks] people;
    # None: the first) and `due` (how long the person has); or `webhook:`.
    task: str | None = None
    assignee: str | None = None
    assignee_line: int | None = None
    due: Span | None = None
    webhook: Webhook | None = None

    @property
    def kind(self) -> str:
        """What the step does when it falls due: "email", "task" or "webhook"."""
        if self.task is not None:
            return "task"
        return "webhook" if self.webhook is not None else "email"

    @property
    def personal_sources(self) -> tuple[str, ...]:
        """The templates of a task's text or of a webhook's body (none for an email)."""
        if self.task is not None:
            return (self.task,)
        if self.webhook is not None:
            return tuple(text for _where, text in template_strings(self.webhook.body))
        return ()

    @property
    def personal(self) -> bool:
        """A task or a webhook: not an email, so neither the unsubscribe nor the frequency
        cap nor quiet hours apply (a complaint or a `forget` still end it)."""
        return self.kind != "email"


def template_strings(value: object, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a webhook body, with its path (`card.message`, `lines.0`)."""
    if isinstance(value, str):
        yield where or "body", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from template_strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from template_strings(item, f"{where}.{i}" if where else str(i))


@dataclass(frozen=True)
class Edition:
    """One newsletter edition: a Markdown file with `title` (and optional `not_before`)."""

    slug: str  # the file stem; what the store records as used
    title: str
    not_before: date | None
    markdown: str  # the body, front matter removed
    html: str  # the body rendered by CommonMark, raw HTML off
    text: str  # the text part of the email: the body as plain text (markdown_to_text)
    path: Path


@dataclass(frozen=True)
class SampleEvent:
    """`sample_event:` of an event-triggered campaign: what previews and `check` give its
    emails as `event` (a real send sees the event that enrolled the customer)."""

    data: Mapping[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Campaign:
    """A loaded, valid campaign file."""

    name: str
    description: str
    path: Path
    file: str  # `path` as shown in messages
    trigger: Trigger | None
    schedule: Schedule | None
    goal: Goal | None
    exit_on: frozenset[str]
    audience: Expression | None
    transactional: bool
    steps: tuple[Step, ...]
    editions: tuple[Edition, ...] = ()
    editions_dir: Path | None = None
    sample_event: SampleEvent | None = None
    topic: str | None = None  # `topic:` (DESIGN 13): sent only to customers who kept it
    topic_line: int | None = None
    language: str | None = None  # `language:` (DESIGN 15): the <html lang> of its emails
    sender: str | None = None  # `from:` (DESIGN 16): its emails' From, else [sender] from
    sender_line: int | None = None
    # `holdout: 10%` (DESIGN 17): the share of customers held out (their steps marked held,
    # never sent) so that `stats` can tell what the campaign causes.
    holdout: float | None = None

    @property
    def recurring(self) -> bool:
        return self.schedule is not None

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None."""
        for step in self.steps:
            if step.id == step_id:
                return step
        return None

    def edition(self, slug: str) -> Edition | None:
        """The edition with this slug (file stem), or None."""
        for edition in self.editions:
            if edition.slug == slug:
                return edition
        return None

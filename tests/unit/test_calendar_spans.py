"""Calendar units in campaign durations (DESIGN 14): `mo` and `y` are calendar months and
years, clamped to the end of a shorter month and keeping the local time across daylight
saving time; held to dateutil's relativedelta on generated dates; `every:` under a day is
refused with the fix."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from dripper.campaigns import load_campaigns
from dripper.engine.timing import due_at, schedule_runs
from dripper.timeparse import Span, add_months, parse_span

BERLIN = ZoneInfo("Europe/Berlin")


@given(st.dates(min_value=date(1950, 1, 1), max_value=date(2900, 12, 31)), st.integers(0, 600))
def test_months_are_relativedeltas(day: date, months: int) -> None:
    """`add_months` agrees with relativedelta(months=n) on every date."""
    assert add_months(day, months) == day + relativedelta(months=months)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), st.integers(1, 24))
def test_schedule_runs_count_months_from_the_start(start: date, months: int) -> None:
    """Run k is `start + k months` (from the start each time, so Jan 31 stays the 31st in
    March), and runs after a given one continue the same series."""
    every = Span(months)
    until = start + relativedelta(months=months * 5)
    runs = schedule_runs(start, every, None, until)
    assert runs == [start + relativedelta(months=months * k) for k in range(6)]
    assert schedule_runs(start, every, runs[2], until) == runs[3:]


def test_parse_spans() -> None:
    """`mo` and `y` are calendar units; `m` stays minutes; the fixed units as before."""
    assert parse_span("6mo") == Span(6)
    assert parse_span("1y") == Span(12)
    assert parse_span("6m") == Span.of(timedelta(minutes=6))
    assert parse_span("14d") == Span.of(timedelta(days=14))
    assert str(Span(24)) == "2y"
    assert str(Span(6)) == "6mo"
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_span("101y")
    with pytest.raises(ValueError, match="6mo"):
        parse_span("6x")


def test_a_month_keeps_the_local_time_across_dst() -> None:
    """09:00 in Berlin in March plus one month is 09:00 in April (CET -> CEST), and
    January 31 plus one month is February 28 at the same local time."""
    march = datetime(2027, 3, 10, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert Span(1).add(march, BERLIN) == datetime(2027, 4, 10, 7, 0, tzinfo=UTC)  # 09:00 CEST
    jan31 = datetime(2027, 1, 31, 8, 0, tzinfo=UTC)
    assert Span(1).add(jan31, BERLIN) == datetime(2027, 2, 28, 8, 0, tzinfo=UTC)
    assert due_at(jan31, Span(1), time(10), BERLIN) == datetime(2027, 2, 28, 9, 0, tzinfo=UTC)


def test_a_broadcast_runs_once() -> None:
    """`once:` is its date alone, and nothing after it has run."""
    day = date(2027, 2, 14)
    assert schedule_runs(day, None, None, date(2027, 2, 13)) == []
    assert schedule_runs(day, None, None, date(2027, 12, 31)) == [day]
    assert schedule_runs(day, None, day, date(2027, 12, 31)) == []


def campaign(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "t.html").write_text("<p>hi {{ unsubscribe_url }}</p>")
    (tmp_path / "campaigns" / "c.yaml").write_text(body)
    _campaigns, problems = load_campaigns(tmp_path / "campaigns", tmp_path / "templates")
    return [str(p) for p in problems]


STEP = "steps:\n  - id: s\n    subject: Hi\n    template: t.html\n"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("{every: 6m, starting: 2027-01-05}",
         "6m is 6 minutes: a schedule runs at most once a day; 6 months is 6mo"),
        ("{every: 12h, starting: 2027-01-05}", "use 1d or more"),
        ("{every: 0, starting: 2027-01-05}", "must be more than 0"),
        ("{once: 2027-02-14, every: 6w}", "not both: remove 'every' or 'once'"),
        ("{once: someday}", "c.yaml:1"),
    ],
)  # fmt: skip
def test_schedule_mistakes(tmp_path: Path, schedule: str, expected: str) -> None:
    """Each mistake in `schedule:` is one problem with the file, line and fix."""
    problems = campaign(tmp_path, f"schedule: {schedule}\n{STEP}")
    assert any(expected in p for p in problems), problems


def test_repeat_goes_with_when_only(tmp_path: Path) -> None:
    """`repeat: true` on an event trigger is refused."""
    problems = campaign(tmp_path, f"trigger: {{event: purchase, repeat: true}}\n{STEP}")
    assert any("'repeat' goes with a 'when' trigger, not with 'event'" in p for p in problems)
    assert (
        campaign(tmp_path, f"trigger: {{when: 'customer.purchases > 1', repeat: true}}\n{STEP}")
        == []
    )


def test_steps_whose_order_depends_on_the_month(tmp_path: Path) -> None:
    """`after: 29d` then `after: 1mo`: February makes the month shorter; refused with the
    fix. `14d` then `1mo` is fine whatever the month."""
    steps = (
        "trigger: {event: purchase}\nsteps:\n"
        "  - {id: a, after: 29d, subject: A, template: t.html}\n"
        "  - {id: b, after: 1mo, subject: B, template: t.html}\n"
    )
    problems = campaign(tmp_path, steps)
    assert any("depends on the month" in p for p in problems), problems
    assert campaign(tmp_path, steps.replace("29d", "14d")) == []


def test_every_is_whole_days(tmp_path: Path) -> None:
    """`every: 36h` is refused: a schedule runs on a day."""
    problems = campaign(tmp_path, f"schedule: {{every: 36h, starting: 2027-01-05}}\n{STEP}")
    assert any("36h is not whole days" in p for p in problems), problems

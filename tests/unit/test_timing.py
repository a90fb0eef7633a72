"""Local send times across DST, quiet hours, anniversaries and schedule runs."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.engine.timing import (
    after_quiet_hours,
    anniversary,
    due_at,
    in_quiet_hours,
    local_instant,
    next_local_time,
    schedule_runs,
    zone,
)
from dripper.timeparse import Span

NY = ZoneInfo("America/New_York")
ZONES = sorted(
    z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV"))
)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
times = st.times().map(lambda t: t.replace(second=0, microsecond=0))


def test_nonexistent_local_time_moves_forward() -> None:
    """02:30 on New York's spring-forward day becomes 03:30 EDT (forward by the gap)."""
    instant = local_instant(date(2027, 3, 14), time(2, 30), NY)
    assert instant.astimezone(NY).replace(tzinfo=None) == datetime(2027, 3, 14, 3, 30)


def test_ambiguous_local_time_fires_once_at_first_occurrence() -> None:
    """01:30 on the fall-back day is the first 01:30 (EDT), and only one instant."""
    instant = local_instant(date(2027, 11, 7), time(1, 30), NY)
    assert instant == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    nxt = next_local_time(instant + timedelta(minutes=1), time(1, 30), NY)
    assert nxt.date() == date(2027, 11, 8)  # the second 01:30 (EST) is not a second firing


def test_day_14_offer_at_ten_local() -> None:
    """14 days after a 10:00 EST purchase at send_at 10:00 is 10:00 local on day 14."""
    enrolled = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)  # 10:00 in New York
    assert due_at(enrolled, Span.of(timedelta(days=14)), time(10), NY) == datetime(
        2027, 1, 18, 15, 0, tzinfo=UTC
    )
    later = datetime(2027, 1, 4, 16, 0, tzinfo=UTC)  # 11:00: the next 10:00 is a day later
    assert due_at(later, Span.of(timedelta(days=14)), time(10), NY).date() == date(2027, 1, 19)


def test_quiet_hours_wrap_midnight() -> None:
    """A send at 22:00 local with quiet hours 21:00-08:00 waits until 08:00 next day."""
    quiet = (time(21), time(8))
    at_ten_pm = local_instant(date(2027, 1, 4), time(22), NY)
    assert after_quiet_hours(at_ten_pm, quiet, NY) == local_instant(date(2027, 1, 5), time(8), NY)
    noon = local_instant(date(2027, 1, 4), time(12), NY)
    assert after_quiet_hours(noon, quiet, NY) == noon
    assert after_quiet_hours(noon, None, NY) == noon


def test_feb_29_falls_on_feb_28_in_common_years() -> None:
    """A leap-day birthday is greeted on Feb 28 in common years and Feb 29 in leap years."""
    assert anniversary(date(1992, 2, 29), 2027) == date(2027, 2, 28)
    assert anniversary(date(1992, 2, 29), 2028) == date(2028, 2, 29)


def test_schedule_runs() -> None:
    """Runs every six weeks from the start, only those after the last run and until today."""
    start = date(2027, 1, 5)
    every = Span.of(timedelta(weeks=6))
    assert schedule_runs(start, every, None, date(2027, 1, 4)) == []
    assert schedule_runs(start, every, None, date(2027, 3, 30)) == [
        date(2027, 1, 5),
        date(2027, 2, 16),
        date(2027, 3, 30),
    ]
    assert schedule_runs(start, every, date(2027, 2, 16), date(2027, 3, 30)) == [date(2027, 3, 30)]


def test_unknown_zone_falls_back() -> None:
    """A missing or unknown customer zone uses the configured one."""
    assert zone(None, "Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert zone("Nowhere/Land", "Europe/Berlin") == ZoneInfo("Europe/Berlin")


@settings(max_examples=300, deadline=None)
@given(moment=moments, at=times, tz_name=st.sampled_from(ZONES))
def test_next_local_time_is_never_early_and_within_two_days(
    moment: datetime, at: time, tz_name: str
) -> None:
    """The next local time is at or after the moment, within ~two days, at that wall time or
    (in a DST gap) shortly after it."""
    tz = ZoneInfo(tz_name)
    result = next_local_time(moment, at, tz)
    assert moment <= result < moment + timedelta(days=2, hours=3)
    wall = result.astimezone(tz)
    delta = datetime.combine(wall.date(), wall.time()) - datetime.combine(wall.date(), at)
    assert timedelta(0) <= delta <= timedelta(hours=3) or wall.time() == at


@settings(max_examples=300, deadline=None)
@given(
    moment=moments,
    start=times,
    end=times,
    tz_name=st.sampled_from(ZONES),
)
def test_after_quiet_hours_is_outside_them(
    moment: datetime, start: time, end: time, tz_name: str
) -> None:
    """A deferred send is never inside quiet hours and never earlier than it was due."""
    if start == end:
        return
    tz = ZoneInfo(tz_name)
    result = after_quiet_hours(moment, (start, end), tz)
    assert result >= moment
    assert not in_quiet_hours(result, (start, end), tz)
    assert result - moment <= timedelta(days=1, hours=3)

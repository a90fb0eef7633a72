"""Durations, times of day and instants as campaign files and the CLI write them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dripper.timeparse import format_duration, parse_duration, parse_instant, parse_time_of_day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, timedelta(0)),
        ("0", timedelta(0)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("14d", timedelta(days=14)),
        ("6w", timedelta(weeks=6)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    """Every documented duration form parses, and formats back."""
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["14", 14, "14x", "-1d", "d", "", True, 1.5, None, "1 day"])
def test_bad_durations(text: object) -> None:
    """A bare number, an unknown unit or a non-string is refused with the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_time_of_day() -> None:
    """HH:MM parses; YAML's sexagesimal int gets a hint to quote it."""
    assert parse_time_of_day("09:00") == time(9, 0)
    assert parse_time_of_day("23:59") == time(23, 59)
    with pytest.raises(ValueError, match="quote it"):
        parse_time_of_day(600)
    for bad in ("9:00", "24:00", "09:60", "nine"):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_time_of_day(bad)


def test_instants_are_utc() -> None:
    """ISO 8601 with Z, an offset or none (read in the default zone) becomes aware UTC."""
    assert parse_instant("2027-03-01T07:00:00Z") == datetime(2027, 3, 1, 7, tzinfo=UTC)
    assert parse_instant("2027-03-01T08:00:00+01:00") == datetime(2027, 3, 1, 7, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_instant("2027-03-01", berlin) == datetime(2027, 2, 28, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("tomorrow")

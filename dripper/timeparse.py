"""Parsing of the small time vocabulary used in campaign files, config and the CLI.

Pure functions: they raise ValueError with a message meant for a user; callers add the
file, line and key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DURATION_HINT = "use 0, 30m, 2h, 14d or 6w"


def parse_duration(value: object) -> timedelta:
    """`0`, `30m`, `2h`, `14d`, `6w` -> timedelta. A bare number other than 0 is refused:
    `after: 14` is far more likely a forgotten `d` than fourteen minutes."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r} ({DURATION_HINT})")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"bad duration {value!r}: a unit is needed ({DURATION_HINT})")
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r} ({DURATION_HINT})")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"bad duration {value!r} ({DURATION_HINT})")
    amount, unit = int(m.group(1)), m.group(2)
    if not unit:
        if amount == 0:
            return timedelta(0)
        raise ValueError(f"bad duration {value!r}: a unit is needed ({DURATION_HINT})")
    return timedelta(**{_UNITS[unit]: amount})


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, using the largest unit that divides evenly."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0"
    if seconds % 60:  # retry and lease settings may be in seconds
        return f"{seconds}s"
    minutes = seconds // 60
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def parse_time_of_day(value: object) -> time:
    """`"09:00"` -> time(9, 0). YAML 1.1 reads an unquoted 09:00 as a sexagesimal int, so
    that case gets a hint to quote it."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'bad time of day {value!r}: quote it, like "09:00"')
    if not isinstance(value, str) or not _TIME_OF_DAY.match(value):
        raise ValueError(f'bad time of day {value!r} (use HH:MM, like "09:00")')
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def parse_instant(value: str, default_tz: tzinfo = UTC) -> datetime:
    """An ISO 8601 moment (`2027-03-01T07:00:00Z`, `2027-03-01 07:00+01:00`, `2027-03-01`)
    -> aware UTC datetime. A moment without offset is read in `default_tz`."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad time {value!r} (use ISO 8601, like 2027-03-01T07:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(UTC)

"""Parsing of the small time vocabulary used in campaign files, config and the CLI.

Pure functions: they raise ValueError with a message meant for a user; callers add the
file, line and key.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_SPAN = re.compile(r"^\s*(\d+)\s*(mo|y|[smhdw]?)\s*$")
# Longer than any campaign could mean, and far from datetime's limits: a typo such as
# `after: 99999999w` is refused when the file loads, not by an OverflowError at send time.
MAX_DURATION = timedelta(days=36525)  # 100 years
# Instants (`--at`, `--now`, event times) are refused outside these years: a step 100
# years after any of them still fits in a datetime.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DURATION_HINT = "use 0, 30m, 2h, 14d or 6w"
SPAN_HINT = "use 0, 30m, 2h, 14d, 6w, 6mo (calendar months) or 1y"
MAX_MONTHS = 1200  # 100 years


def parse_duration(value: object) -> timedelta:
    """`0`, `30m`, `2h`, `14d`, `6w` -> timedelta. A bare number other than 0 is refused:
    `after: 14` is far more likely a forgotten `d` than fourteen minutes."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {_shown(value)} ({DURATION_HINT})")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"bad duration {_shown(value)}: a unit is needed ({DURATION_HINT})")
    if not isinstance(value, str):
        raise ValueError(f"bad duration {_shown(value)} ({DURATION_HINT})")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"bad duration {_shown(value)} ({DURATION_HINT})")
    digits, unit = m.group(1), m.group(2)
    if not unit:
        if digits.strip("0") == "":
            return timedelta(0)
        raise ValueError(f"bad duration {_shown(value)}: a unit is needed ({DURATION_HINT})")
    too_long = f"duration {_shown(value)} is longer than 100 years ({DURATION_HINT})"
    if len(digits.lstrip("0")) > 12:  # beyond any unit's 100 years, and int() stays cheap
        raise ValueError(too_long)
    delta = timedelta(**{_UNITS[unit]: int(digits)})
    if delta > MAX_DURATION:
        raise ValueError(too_long)
    return delta


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
        raise ValueError(
            f"bad time {_shown(value)} (use ISO 8601, like 2027-03-01T07:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise ValueError(
            f"time {_shown(value)} is out of range "
            f"(use a time between {EARLIEST_YEAR} and {LATEST_YEAR})"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # unreachable within the years above; never a traceback
        raise ValueError(f"time {_shown(value)} is out of range") from None


def _shown(value: object, limit: int = 40) -> str:
    """`value` as a message quotes it: repr, cut short (a message is one readable line)."""
    text = repr(value.strip() if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# --- calendar spans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A campaign's `after`, `every` or `within` (DESIGN 14): a fixed length, or whole
    calendar months (`mo`; `y` is 12 of them). A month is the calendar's: January 31 plus
    one month is the last day of February, and the local time of day is kept across a
    change of daylight saving time."""

    months: int = 0
    fixed: timedelta = timedelta(0)

    @classmethod
    def of(cls, delta: timedelta) -> Span:
        return cls(0, delta)

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.fixed == timedelta(0)

    @property
    def shortest(self) -> timedelta:
        """As short as it can be (every month a February)."""
        return timedelta(days=self.months * 28) + self.fixed

    @property
    def longest(self) -> timedelta:
        """As long as it can be (every month of 31 days)."""
        return timedelta(days=self.months * 31) + self.fixed

    @property
    def approx(self) -> timedelta:
        """About how long (a month as 30.44 days): for orders and warnings, never dates."""
        return timedelta(days=self.months * 30.436875) + self.fixed

    def add(self, moment: datetime, tz: tzinfo = UTC, times: int = 1) -> datetime:
        """`moment` plus this span `times` over: months on the local calendar of `tz`."""
        if self.months:
            local = moment.astimezone(tz)
            day = add_months(local.date(), self.months * times)
            wall = datetime.combine(day, local.time(), tzinfo=tz)
            moment = wall.astimezone(UTC)
        return moment + self.fixed * times

    def add_to_date(self, day: date, times: int = 1) -> date:
        """A date plus this span `times` over (whole days of the fixed part)."""
        if self.months:
            day = add_months(day, self.months * times)
        return day + timedelta(days=self.fixed.days * times)

    def __str__(self) -> str:
        if self.months:
            return f"{self.months // 12}y" if self.months % 12 == 0 else f"{self.months}mo"
        return format_duration(self.fixed)


def add_months(day: date, months: int) -> date:
    """`day` plus `months` calendar months, clamped to the month's last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def parse_span(value: object) -> Span:
    """`parse_duration` and calendar units: `6mo`, `1y`. `m` stays minutes."""
    if isinstance(value, str):
        m = _SPAN.match(value)
        if m and m.group(2) in ("mo", "y"):
            count = int(m.group(1)) if len(m.group(1)) < 6 else MAX_MONTHS + 1
            months = count * (12 if m.group(2) == "y" else 1)
            if months > MAX_MONTHS:
                raise ValueError(
                    f"duration {_shown(value)} is longer than 100 years ({SPAN_HINT})"
                )
            return Span(months)
    try:
        return Span.of(parse_duration(value))
    except ValueError as exc:
        raise ValueError(str(exc).replace(DURATION_HINT, SPAN_HINT)) from None

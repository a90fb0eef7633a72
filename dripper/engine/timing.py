"""When things happen, in the customer's local time. Pure: every function takes `now` or
the moment it reasons about; none reads the clock.

DST rules (DESIGN 7): a local time that does not exist (the spring-forward gap) moves forward
by the length of the gap, as cron and java.time do; an ambiguous one (the autumn overlap)
fires once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from dripper.timeparse import Span


# Planning asks the same few questions for every customer of a zone (a newsletter run: one
# local midnight and one 09:00 per zone and day); both answers are pure, so remember them.
@lru_cache(maxsize=1024)
def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The customer's zone, or the configured one when they have none (or a bad one)."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (KeyError, ValueError):
                continue
    return ZoneInfo("UTC")


@lru_cache(maxsize=8192)
def local_instant(day: date, at: time, tz: tzinfo) -> datetime:
    """`day` at wall-clock `at` in `tz` as an aware UTC instant, DST-safe."""
    # fold=0 does both DST rules at once: in the gap it applies the offset in force before
    # the transition, which lands the gap's length later on the wall clock (forward); in the
    # overlap it picks the first of the two instants.
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """Local midnight of `day` (or the first instant of the day where midnight is skipped)."""
    return local_instant(day, time(0, 0), tz)


def next_local_time(moment: datetime, at: time, tz: tzinfo) -> datetime:
    """The first instant at or after `moment` whose local wall-clock time is `at`."""
    local_day = moment.astimezone(tz).date()
    for offset in range(3):  # today, else tomorrow (a skipped time may push past tomorrow)
        candidate = local_instant(local_day + timedelta(days=offset), at, tz)
        if candidate >= moment:
            return candidate
    raise AssertionError("unreachable: a local time recurs within three days")


def due_at(enrolled_at: datetime, after: Span, send_at: time | None, tz: tzinfo) -> datetime:
    """When a step falls due: `after` from enrollment (calendar months on the customer's
    own calendar), then the first `send_at` local time."""
    moment = after.add(enrolled_at, tz)
    return moment if send_at is None else next_local_time(moment, send_at, tz)


def in_quiet_hours(moment: datetime, quiet: tuple[time, time], tz: tzinfo) -> bool:
    start, end = quiet
    local = moment.astimezone(tz).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight, e.g. 21:00-08:00


def after_quiet_hours(moment: datetime, quiet: tuple[time, time] | None, tz: tzinfo) -> datetime:
    """`moment`, or the end of the quiet hours it falls in (a deferral, never a skip)."""
    if quiet is None or not in_quiet_hours(moment, quiet, tz):
        return moment
    return next_local_time(moment, quiet[1], tz)


def anniversary(original: date, year: int) -> date:
    """`original` in `year`; Feb 29 falls on Feb 28 in common years."""
    try:
        return original.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def schedule_runs(
    starting: date, every: Span | None, after: date | None, until: date
) -> list[date]:
    """Run dates `starting + k*every` that are later than `after` and not later than
    `until`; `every` None is a one-off broadcast: `starting` alone. Months are calendar
    months counted from `starting` each time (Jan 31, Feb 28, Mar 31, ...)."""
    if every is None:
        late = after is not None and after >= starting
        return [] if late or starting > until else [starting]
    if every.is_zero or every.approx < timedelta(days=1):
        raise ValueError("a schedule needs an interval of a day or more")
    runs: list[date] = []
    k = 0
    if after is not None and after >= starting:
        # a guess a little short of the first run after `after`, then forward
        k = max(0, int((after - starting).days / (every.approx.total_seconds() / 86400)) - 1)
        while every.add_to_date(starting, k) <= after:
            k += 1
    while (run := every.add_to_date(starting, k)) <= until:
        runs.append(run)
        k += 1
    return runs

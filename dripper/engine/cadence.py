"""How long a customer goes without hearing from the shop: the longest silences in a
timeline of sends. Pure: the times in, the gaps out (`dripper check` feeds it the
simulator's year; `stats --cadence` asks the database instead)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

# Sends at a local time of day drift against UTC by an hour at a daylight-saving change,
# and `send_at` moves a send within its day: an email on the cadence's last day is on time.
SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Silence:
    """The longest stretch one customer hears nothing, from `start` to `end`."""

    email: str
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def longest_silences(
    sends: Mapping[str, Iterable[datetime]],
    *,
    start: datetime,
    end: datetime,
    longer_than: timedelta,
) -> list[Silence]:
    """For each customer (every key, those with no send too), the longest stretch between
    `start`, their sends and `end`, when it is longer than `longer_than` by more than
    SLACK; longest first."""
    found = []
    for email, times in sends.items():
        marks = [start, *sorted(t for t in times if start <= t <= end), end]
        gap = max(pairwise(marks), key=lambda pair: pair[1] - pair[0])
        if gap[1] - gap[0] > longer_than + SLACK:
            found.append(Silence(email, gap[0], gap[1]))
    return sorted(found, key=lambda s: (-s.length, s.email))


@dataclass(frozen=True)
class Crowding:
    """The busiest week of one customer: `count` marketing emails from `start`, and the
    campaigns that sent them."""

    email: str
    start: datetime
    count: int
    campaigns: tuple[str, ...]


def over_mailing(
    sends: Mapping[str, Iterable[tuple[datetime, str]]],
    *,
    limit: int,
    window: timedelta = timedelta(days=7),
) -> list[Crowding]:
    """For each customer whose non-transactional sends `(time, campaign)` put more than
    `limit` into some `window`, their busiest window (DESIGN 14: `check`'s warning);
    the most crowded first."""
    found = []
    for email, items in sends.items():
        ordered = sorted(items)
        best: tuple[int, int] | None = None  # (count, index of the window's first send)
        first = 0
        for last in range(len(ordered)):
            while ordered[last][0] - ordered[first][0] >= window:
                first += 1
            count = last - first + 1
            if count > limit and (best is None or count > best[0]):
                best = (count, first)
        if best is not None:
            count, first = best
            names = tuple(sorted({c for _, c in ordered[first : first + count]}))
            found.append(Crowding(email, ordered[first][0], count, names))
    return sorted(found, key=lambda c: (-c.count, c.email))

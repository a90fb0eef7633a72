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

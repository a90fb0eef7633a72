"""What the numbers mean: rates of delivered emails, which A/B variant is likely best, the
second sale's median, the best customers' share. Pure: counts in, figures out.

Rates are fractions of `delivered` (sent minus bounced): a bounced email could not be
opened, and machine opens or scanner clicks never count (they are in `opens_machine` and
`clicks_scanner`, kept apart).

Which variant is best: each variant's rate (conversions per delivered email, or, while no
variant has converted anyone yet, human clicks per delivered email) has a Beta(1 + hits,
1 + misses) posterior under a uniform prior; the chance that a variant is best is the share
of joint draws in which it has the highest rate. Below MIN_DELIVERED per variant there is
not enough data yet and no chance is given.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

MIN_DELIVERED = 100  # per variant, before a chance is given
DRAWS = 10_000  # Monte Carlo draws: a chance's standard error is at most half a point


@dataclass
class Funnel:
    """One row of `dripper stats`: a step (all variants together) or one variant of it.
    The field names are contract (DESIGN 8)."""

    sent: int = 0
    failed: int = 0
    bounced: int = 0
    opens_human: int = 0
    opens_machine: int = 0
    unique_opens: int = 0
    clicks_human: int = 0
    clicks_scanner: int = 0
    unique_clicks: int = 0
    replies: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    conversions: int = 0
    # In the company's currency ([company] currency), refunds already taken off; what the
    # converting purchases' refunds returned; other currencies apart, never added in.
    revenue: float = 0.0
    refunds: float = 0.0
    revenue_other: dict[str, float] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return max(self.sent - self.bounced, 0)

    def add(self, other: Funnel) -> None:
        for f in fields(self):
            if f.name == "revenue_other":
                for code, amount in other.revenue_other.items():
                    self.revenue_other[code] = self.revenue_other.get(code, 0.0) + amount
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def rates(self) -> dict[str, float | None]:
        """Each of the human counts as a fraction of delivered (None: nothing delivered)."""
        d = self.delivered

        def rate(n: int) -> float | None:
            return round(n / d, 4) if d else None

        return {
            "open_rate": rate(self.unique_opens),
            "click_rate": rate(self.unique_clicks),
            "reply_rate": rate(self.replies),
            "unsubscribe_rate": rate(self.unsubscribes),
            "complaint_rate": rate(self.complaints),
            "conversion_rate": rate(self.conversions),
            "bounce_rate": round(self.bounced / self.sent, 4) if self.sent else None,
        }

    def as_row(self) -> dict[str, object]:
        """The JSON row: every count, `delivered`, the rates."""
        row: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        row["revenue"] = round(self.revenue, 2)
        row["refunds"] = round(self.refunds, 2)
        row["revenue_other"] = {c: round(v, 2) for c, v in sorted(self.revenue_other.items())}
        row["delivered"] = self.delivered
        row.update(self.rates())
        return row


@dataclass(frozen=True)
class Chances:
    """Which variant of a step is likely best, and on what."""

    metric: str  # "conversions" or "human clicks"
    chance_best: Mapping[int, float | None]  # variant -> chance, None: not enough data
    enough: bool
    samples: Mapping[int, int] = field(default_factory=dict)  # variant -> delivered


def chances(variants: Mapping[int, Funnel], *, seed: int = 0) -> Chances:
    """The chance each variant is best, from a Beta-binomial model (see the module)."""
    converted = any(f.conversions for f in variants.values())
    metric = "conversions" if converted else "human clicks"
    samples = {v: f.delivered for v, f in variants.items()}
    enough = len(variants) > 1 and all(n >= MIN_DELIVERED for n in samples.values())
    if not enough:
        return Chances(metric, {v: None for v in variants}, False, samples)
    rng = random.Random(seed)  # noqa: S311 (a simulation, seeded: the same data, the same chances)
    params = {
        v: (1 + hits, 1 + max(f.delivered - hits, 0))
        for v, f in variants.items()
        for hits in [f.conversions if converted else f.unique_clicks]
    }
    wins = dict.fromkeys(variants, 0)
    for _ in range(DRAWS):
        draws = {v: rng.betavariate(a, b) for v, (a, b) in params.items()}
        wins[max(draws, key=lambda v: draws[v])] += 1
    return Chances(metric, {v: round(n / DRAWS, 3) for v, n in wins.items()}, True, samples)


def median_days(deltas: Sequence[float]) -> float | None:
    return round(statistics.median(deltas), 1) if deltas else None


def share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None

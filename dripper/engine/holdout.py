"""Does a campaign cause what follows it? (DESIGN 17). The customers held out of a
campaign (`holdout:`) are compared with those emailed: the conversion rates and the revenue
per enrolled customer of both groups, and the lift (emailed minus held out) with a 95%
interval. Pure: counts and amounts in, numbers out.

- Conversion: Newcombe's hybrid score interval for a difference of two independent
  proportions (Newcombe 1998, "Interval estimation for the difference between independent
  proportions", method 10), built from each group's Wilson score interval: sound at small
  counts and at rates near 0, where the textbook Wald interval is not.
- Revenue per customer: a percentile bootstrap (10,000 resamples of each group, seeded, so
  the same data always give the same interval). Most customers spend nothing in the window,
  so a resample of n customers is drawn as a binomial number of buyers and then that many
  amounts resampled from the buyers: the same distribution as resampling all n, at the cost
  of the buyers only (from 1,000 buyers on, a resample's total is drawn from its normal
  limit, which the central limit theorem makes exact to well under a cent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
RESAMPLES = 10_000
EXACT_BUYERS = 1000  # from this many buyers a resample's sum is drawn from its normal limit
SEED = 20_050_101  # any fixed number: the interval must not change between two `stats`


@dataclass(frozen=True)
class Group:
    """One side of a holdout: how many were enrolled, how many reached the goal, and the
    revenue (cents) of each enrolled customer who bought in the window (the rest bought
    nothing)."""

    enrolled: int
    converted: int
    revenue: Sequence[int]  # cents, one per customer who spent something

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.enrolled if self.enrolled else None

    @property
    def revenue_per_customer(self) -> float | None:
        """In currency units (not cents)."""
        return sum(self.revenue) / 100 / self.enrolled if self.enrolled else None

    def as_json(self) -> dict[str, object]:
        rate = self.conversion_rate
        per = self.revenue_per_customer
        return {
            "customers": self.enrolled,
            "conversions": self.converted,
            "conversion_rate": None if rate is None else round(rate, 6),
            "revenue_per_customer": None if per is None else round(per, 4),
        }


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(low, difference, high) for p1 - p2: Newcombe's method 10."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (low, diff, high)


def bootstrap_difference(
    treated: Group, held: Group, *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float, float]:
    """(low, difference, high): a 95% percentile bootstrap of the difference in revenue
    per customer (currency units), treated minus held."""
    rng = np.random.default_rng(seed)

    def means(group: Group) -> np.ndarray:
        amounts = np.asarray(group.revenue, dtype=np.float64) / 100
        n = group.enrolled
        buyers = rng.binomial(n, len(amounts) / n, size=resamples)
        totals = np.zeros(resamples)
        if len(amounts) >= EXACT_BUYERS:  # the sum of that many draws is normal (CLT)
            mean, sd = float(amounts.mean()), float(amounts.std())
            totals = buyers * mean + np.sqrt(buyers) * sd * rng.standard_normal(resamples)
        elif len(amounts):
            for i, count in enumerate(buyers):  # cost: the buyers drawn, not the n enrolled
                totals[i] = amounts[rng.integers(0, len(amounts), size=count)].sum()
        return totals / n

    spread = means(treated) - means(held)
    observed = (treated.revenue_per_customer or 0.0) - (held.revenue_per_customer or 0.0)
    low, high = np.percentile(spread, [2.5, 97.5])
    return (float(low), observed, float(high))


@dataclass(frozen=True)
class Lift:
    conversion: tuple[float, float, float]
    revenue_per_customer: tuple[float, float, float]

    def as_json(self) -> dict[str, list[float]]:
        return {
            "conversion": [round(v, 6) for v in self.conversion],
            "revenue_per_customer": [round(v, 4) for v in self.revenue_per_customer],
        }


def lift(treated: Group, held: Group, *, minimum: int) -> Lift | str:
    """The lift with its intervals, or why there is none yet ("not enough data ...")."""
    if treated.enrolled < minimum or held.enrolled < minimum:
        return (
            f"not enough data: {treated.enrolled} emailed and {held.enrolled} held out, "
            f"{minimum} of each needed ([stats] min_holdout)"
        )
    conversion = newcombe(treated.converted, treated.enrolled, held.converted, held.enrolled)
    return Lift(conversion, bootstrap_difference(treated, held))

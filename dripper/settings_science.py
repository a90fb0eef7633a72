"""`[stats]` and `[predict]` (DESIGN 17): how much data a holdout's lift and the lifetime
models need before they say anything. Beside `dripper.settings` (whose checkers it uses);
`dripper.config` reads it."""

from __future__ import annotations

from dataclasses import dataclass

from dripper.settings import _int_range, _key


@dataclass(frozen=True)
class StatsSettings:
    """`[stats]`: a holdout's lift is "not enough data" while either group is smaller."""

    min_holdout: int = _key(_int_range(1, 10_000_000), 50)


@dataclass(frozen=True)
class PredictSettings:
    """`[predict]`: the lifetime models are fitted only with this many buyers and repeat
    buyers (below, the values stay empty and `customers predict` says why)."""

    min_customers: int = _key(_int_range(2, 100_000_000), 200)
    min_repeat: int = _key(_int_range(2, 100_000_000), 50)


SCIENCE_SECTIONS: dict[str, type] = {"stats": StatsSettings, "predict": PredictSettings}

"""Who will stay, and what they will spend (DESIGN 17): the BG/NBD model of purchase
frequency and drop-out (Fader, Hardie & Lee, "Counting Your Customers the Easy Way",
Marketing Science 2005) and the Gamma-Gamma model of spend per purchase (Fader, Hardie &
Lee, "RFM and CLV", JMR 2005; Fader & Hardie, "The Gamma-Gamma Model of Monetary Value",
2013), fitted by maximum likelihood. Pure: numpy arrays in, parameters and per-customer
values out; no I/O, no clock.

Per customer: `x` repeat purchases (days with a purchase after the first), `t_x` the
time of the last one and `T` the time since the first (days), and `m` the mean spend of
the repeat purchases. The assumptions, which the documentation repeats: purchases are
non-contractual (a customer leaves silently) and in continuous time; while alive a
customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha) and after each
purchase leaves with probability p ~ Beta(a, b); spend per purchase varies around the
customer's own mean (Gamma(p, nu), nu ~ Gamma(q, gamma)) independently of how often they
buy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

Array = NDArray[np.float64]


class FitError(Exception):
    """The model could not be fitted: the reason, fit for a user."""


@dataclass(frozen=True)
class PurchaseModel:
    """BG/NBD: lambda ~ Gamma(r, alpha) (alpha in days), p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_json(self) -> dict[str, object]:
        return {"name": "bg-nbd", "time_unit": "day", "r": self.r, "alpha": self.alpha,
                "a": self.a, "b": self.b}  # fmt: skip


@dataclass(frozen=True)
class SpendModel:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float

    def as_json(self) -> dict[str, object]:
        return {"name": "gamma-gamma", "p": self.p, "q": self.q, "gamma": self.gamma}

    @property
    def mean(self) -> float:
        """The population's mean spend per purchase (what a customer with no repeat
        purchase is expected to spend)."""
        return self.p * self.gamma / (self.q - 1)


# --- BG/NBD -------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    params: tuple[float, float, float, float], x: Array, t_x: Array, T: Array
) -> Array:
    """Each customer's log-likelihood (FHL 2005, equation 6)."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # x = 0: the second term is absent; betaln(a + 1, b - 1) may be undefined there.
    xr = np.where(repeat, x, 1.0)
    gone = betaln(a + 1, b + xr - 1) - betaln(a, b) - (r + xr) * np.log(alpha + t_x)
    both = np.logaddexp(alive, np.where(repeat, gone, -np.inf))
    return np.asarray(common + both, dtype=np.float64)


def fit_bgnbd(x: Array, t_x: Array, T: Array, weights: Array | None = None) -> PurchaseModel:
    """Maximum likelihood over log-parameters (positive by construction), from a start the
    data suggest; FitError when it does not converge to finite values."""
    w = np.ones_like(x) if weights is None else weights
    scale = float(np.average(T, weights=w)) or 1.0  # alpha lives on the scale of T
    loglik = _BgNbdLikelihood(x, t_x, T, w)

    def negative(theta: Array) -> float:
        total = loglik(*(float(v) for v in np.exp(theta)))
        return -total if math.isfinite(total) else 1e300

    start = np.log([0.5, scale, 1.0, 2.0])
    found = _minimize(negative, start)
    r, alpha, a, b = (float(v) for v in np.exp(found))
    return PurchaseModel(r, alpha, a, b)


class _BgNbdLikelihood:
    """`bgnbd_log_likelihood` summed, for a million customers in milliseconds. Its
    "alive" term depends on (x, T) only and its "gone" term on (x, t_x) only: a shop has a
    few dozen x, a few hundred whole-day T and t_x, so each term is computed once per
    distinct pair and gathered per customer, where only the log-sum of the two remains."""

    def __init__(self, x: Array, t_x: Array, T: Array, w: Array) -> None:
        self.ux, xi = np.unique(x, return_inverse=True)
        self.uT, Ti = np.unique(T, return_inverse=True)
        self.ut, ti = np.unique(t_x, return_inverse=True)
        (self.aX, self.aT), self.alive_of = distinct(xi.astype(np.float64), Ti.astype(np.float64))
        (self.gX, self.gt), self.gone_of = distinct(xi.astype(np.float64), ti.astype(np.float64))
        self.aX, self.aT = self.aX.astype(np.intp), self.aT.astype(np.intp)
        self.gX, self.gt = self.gX.astype(np.intp), self.gt.astype(np.intp)
        self.xi = xi
        self.w = w
        self.repeat = self.ux > 0
        self.uxr = np.where(self.repeat, self.ux, 1.0)

    def __call__(self, r: float, alpha: float, a: float, b: float) -> float:
        ux = self.ux
        with np.errstate(all="ignore"):
            common = gammaln(r + ux) - gammaln(r) + r * math.log(alpha)
            base = betaln(a, b)
            alive_x = betaln(a, b + ux) - base
            gone_x = np.where(self.repeat, betaln(a + 1, b + self.uxr - 1) - base, -np.inf)
            rx = r + ux
            alive = alive_x[self.aX] - rx[self.aX] * np.log(alpha + self.uT)[self.aT]
            gone = gone_x[self.gX] - rx[self.gX] * np.log(alpha + self.ut)[self.gt]
            per = common[self.xi] + np.logaddexp(alive[self.alive_of], gone[self.gone_of])
        return float(np.dot(self.w, per))


def p_alive(model: PurchaseModel, x: Array, t_x: Array, T: Array) -> Array:
    """P(still a customer | history) (FHL 2005, equation 13); 1 for no repeat purchase."""
    return np.asarray(1.0 / (1.0 + _dropped_odds(model, x, t_x, T)), dtype=np.float64)


def _dropped_odds(model: PurchaseModel, x: Array, t_x: Array, T: Array) -> Array:
    """The odds that the customer left after their last purchase (0 with no repeat
    purchase): P(alive) is 1 / (1 + odds), and the expectation is divided by the same."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    xr = np.where(x > 0, x, 1.0)
    with np.errstate(all="ignore"):
        log_ratio = (
            np.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return np.asarray(
            np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0), dtype=np.float64
        )


def expected_purchases(model: PurchaseModel, t: float, x: Array, t_x: Array, T: Array) -> Array:
    """E[purchases in (T, T + t] | history] (FHL 2005, equation 10); NaN where the special
    function cannot be evaluated (the caller stores null there, never NaN). Computed once
    per distinct (x, t_x, T) and gathered: hyp2f1 is the dear part."""
    (ux, ut, uT), inverse = distinct(x, t_x, T)
    return np.asarray(_expected_purchases(model, t, ux, ut, uT)[inverse], dtype=np.float64)


def distinct(*columns: Array) -> tuple[list[Array], NDArray[np.intp]]:
    """The distinct rows of the columns (sorted), and for each row its index among them:
    one lexicographic sort of the columns (numpy's `unique(axis=0)` is several times
    slower on a million rows)."""
    n = len(columns[0])
    if n == 0:
        return [c[:0] for c in columns], np.zeros(0, dtype=np.intp)
    order = np.lexsort(columns[::-1])
    ranked = [c[order] for c in columns]
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    for column in ranked:
        starts[1:] |= column[1:] != column[:-1]
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return [column[starts] for column in ranked], inverse


def _expected_purchases(model: PurchaseModel, t: float, x: Array, t_x: Array, T: Array) -> Array:
    odds = _dropped_odds(model, x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if abs(a - 1.0) < 1e-9:
        a = 1.0 + 1e-9  # the closed form divides by a - 1
    z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        tail = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
        value = head * tail / (1.0 + odds)
    value = np.where(np.isfinite(value) & (value >= 0), value, np.nan)
    return np.asarray(value, dtype=np.float64)


# --- Gamma-Gamma --------------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: tuple[float, float, float], x: Array, m: Array) -> Array:
    """Each repeat customer's log-likelihood of their mean spend `m` over `x` purchases
    (Fader & Hardie 2013, equation 4)."""
    p, q, gamma = params
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x),
        dtype=np.float64,
    )


def fit_gamma_gamma(x: Array, m: Array, weights: Array | None = None) -> SpendModel:
    """Maximum likelihood over the repeat customers with a positive mean spend; q > 1 is
    needed for a finite expected spend (FitError otherwise)."""
    w = np.ones_like(x) if weights is None else weights
    level = float(np.average(m, weights=w))
    ux, xi = np.unique(x, return_inverse=True)
    log_m, log_x = np.log(m), np.log(x)

    def negative(theta: Array) -> float:
        p, q, gamma = (float(v) for v in np.exp(theta))
        with np.errstate(all="ignore"):
            by_x = gammaln(p * ux + q) - gammaln(p * ux)  # a term of x alone: once a value
            px = p * x
            per = by_x[xi] + (px - 1) * log_m + px * log_x - (px + q) * np.log(gamma + m * x)
            total = float(np.dot(w, per)) + float(w.sum()) * (q * math.log(gamma) - gammaln(q))
        return -total if math.isfinite(total) else 1e300

    start = np.log([2.0, 3.0, max(level, 1e-6)])
    found = _minimize(negative, start)
    p, q, gamma = (float(v) for v in np.exp(found))
    if q <= 1.0:
        raise FitError(
            f"the spend model's q is {q:.3g} (at most 1): spend per order varies too much "
            "for an expected value; predicted_clv_365d is left empty"
        )
    return SpendModel(p, q, gamma)


def expected_spend(model: SpendModel, x: Array, m: Array) -> Array:
    """E[spend per purchase | history] (Fader & Hardie 2013, equation 5); the population
    mean for a customer with no repeat purchase or no positive mean spend."""
    p, q, gamma = model.p, model.q, model.gamma
    known = (x > 0) & (m > 0)
    with np.errstate(all="ignore"):
        own = p * (gamma + m * x) / (p * x + q - 1)
    return np.asarray(np.where(known, own, model.mean), dtype=np.float64)


# --- fitting ------------------------------------------------------------------------------


def _minimize(objective: Callable[[Array], float], start: Array) -> Array:
    """BFGS from the data's start (about 150 evaluations for these likelihoods); where it
    stops short, Nelder-Mead (robust from a rough start) and BFGS again to polish.
    FitError when no finite optimum is found."""
    best = minimize(objective, start, method="BFGS", options={"gtol": 1e-6, "maxiter": 400})
    # "Precision loss": the line search cannot improve on numerical gradients, i.e. an
    # optimum to the precision there is; only another stop asks for the slower path.
    stopped_short = not best.success and "precision loss" not in str(best.message)
    ran_off = bool(np.any(np.abs(best.x) > 30))  # toward a limit, maybe not the optimum
    if stopped_short or ran_off or not math.isfinite(best.fun):
        rough = minimize(
            objective, start, method="Nelder-Mead", options={"maxiter": 800, "xatol": 1e-7,
                                                             "fatol": 1e-9}
        )  # fmt: skip
        polished = minimize(objective, rough.x, method="BFGS", options={"gtol": 1e-6})
        best = polished if math.isfinite(polished.fun) and polished.fun <= rough.fun else rough
    found = np.asarray(best.x, dtype=np.float64)
    value = objective(found)
    if not math.isfinite(value) or value >= 1e299 or not np.all(np.isfinite(found)):
        raise FitError("the likelihood has no finite maximum for these purchases")
    if np.any(np.abs(found) > 30):  # a parameter ran off to 0 or infinity: no optimum
        raise FitError("the fit did not converge (a parameter ran off to 0 or infinity)")
    return found


def compress(*columns: Array) -> tuple[list[Array], Array]:
    """The distinct rows of the columns and how often each occurs: a shop's customers
    share many (x, t_x, T) triples, so the likelihood is summed over those."""
    rows, inverse = distinct(*columns)
    return rows, np.bincount(inverse, minlength=len(rows[0])).astype(np.float64)

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

    def negative(theta: Array) -> float:
        r, alpha, a, b = np.exp(theta)
        ll = bgnbd_log_likelihood((r, alpha, a, b), x, t_x, T)
        total = float(np.dot(w, ll))
        return -total if math.isfinite(total) else 1e300

    start = np.log([0.5, scale, 1.0, 2.0])
    found = _minimize(negative, start)
    r, alpha, a, b = (float(v) for v in np.exp(found))
    return PurchaseModel(r, alpha, a, b)


def p_alive(model: PurchaseModel, x: Array, t_x: Array, T: Array) -> Array:
    """P(still a customer | history) (FHL 2005, equation 13); 1 for no repeat purchase."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    xr = np.where(x > 0, x, 1.0)
    log_ratio = (
        np.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0)
    return np.asarray(1.0 / (1.0 + odds), dtype=np.float64)


def expected_purchases(model: PurchaseModel, t: float, x: Array, t_x: Array, T: Array) -> Array:
    """E[purchases in (T, T + t] | history] (FHL 2005, equation 10); NaN where the special
    function cannot be evaluated (the caller stores null there, never NaN)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if abs(a - 1.0) < 1e-9:
        a = 1.0 + 1e-9  # the closed form divides by a - 1
    xr = np.where(x > 0, x, 1.0)
    z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        tail = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
        log_ratio = (
            np.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0)
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

    def negative(theta: Array) -> float:
        p, q, gamma = np.exp(theta)
        total = float(np.dot(w, gamma_gamma_log_likelihood((p, q, gamma), x, m)))
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
    """Nelder-Mead first (robust from a rough start), then BFGS to polish; FitError when
    neither ends at a finite optimum."""
    first = minimize(
        objective, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-8,
                                                         "fatol": 1e-10}
    )  # fmt: skip
    best = first.x
    polished = minimize(objective, best, method="BFGS", options={"gtol": 1e-6})
    if math.isfinite(polished.fun) and polished.fun <= first.fun:
        best = polished.x
    value = objective(best)
    if not math.isfinite(value) or value >= 1e299 or not np.all(np.isfinite(best)):
        raise FitError("the likelihood has no finite maximum for these purchases")
    if np.any(np.abs(best) > 30):  # a parameter ran off to 0 or infinity: no optimum
        raise FitError("the fit did not converge (a parameter ran off to 0 or infinity)")
    return np.asarray(best, dtype=np.float64)


def compress(*columns: Array) -> tuple[list[Array], Array]:
    """The distinct rows of the columns and how often each occurs: a shop's customers
    share a few thousand (x, t_x, T) triples, so the likelihood is summed over those."""
    stacked = np.stack(columns, axis=1)
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(np.float64)

"""The lifetime models (DESIGN 17) held to the papers and to themselves: the CDNOW sample
gives the published BG/NBD and Gamma-Gamma estimates; the closed-form likelihoods equal a
direct numerical integration over the mixing distributions; histories simulated from known
parameters (seeded) give those parameters back within a stated tolerance; data that cannot
be fitted is a FitError, never a NaN."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from dripper.engine import clv
from dripper.engine.holdout import Group, bootstrap_difference, lift, newcombe, wilson

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow" / "summary.csv"


def cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with CDNOW.open() as handle:
        rows = list(csv.DictReader(handle))
    x, t_x, T, m = (np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T", "zbar"))
    return x, t_x, T, m


def test_the_cdnow_sample_gives_the_published_estimates() -> None:
    """BG/NBD r=0.243, alpha=4.414, a=0.793, b=2.426 (FHL 2005, weeks); Gamma-Gamma
    p=6.25, q=3.74, gamma=15.44 (FHL 2005, JMR): each within 0.5%. And the paper's customer
    (x=2, t_x=30.43, T=38.86) is expected to buy 1.226 times in the next 39 weeks."""
    x, t_x, T, m = cdnow()
    assert len(x) == 2357
    (cx, ctx, cT), w = clv.compress(x, t_x, T)
    model = clv.fit_bgnbd(cx, ctx, cT, w)
    for got, published in zip(
        (model.r, model.alpha, model.a, model.b), (0.243, 4.414, 0.793, 2.426), strict=True
    ):
        assert got == pytest.approx(published, rel=0.005)
    repeat = (x > 0) & (m > 0)
    spend = clv.fit_gamma_gamma(x[repeat], m[repeat])
    for got, published in zip((spend.p, spend.q, spend.gamma), (6.25, 3.74, 15.44), strict=True):
        assert got == pytest.approx(published, rel=0.005)
    one = np.array([2.0]), np.array([30.43]), np.array([38.86])
    assert clv.expected_purchases(model, 39.0, *one)[0] == pytest.approx(1.226, abs=0.002)


def individual_bgnbd(lam: float, p: float, x: int, t_x: float, T: float) -> float:
    """P(x repeat purchases, the last at t_x | alive up to T...) for one customer (FHL
    2005, equation 3): what the closed form integrates over lambda and p."""
    value = (1 - p) ** x * lam**x * math.exp(-lam * T)
    if x > 0:
        value += p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x)
    return value


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 10.0), (1, 4.0, 10.0), (3, 8.5, 12.0)])
def test_the_bgnbd_likelihood_equals_its_integral(x: int, t_x: float, T: float) -> None:
    """exp(log-likelihood) equals the double integral over lambda ~ Gamma(r, alpha) and
    p ~ Beta(a, b) of the individual likelihood, to 1e-6 relative."""
    r, alpha, a, b = 1.7, 3.0, 1.3, 2.2  # r > 1: no singularity at lambda = 0 to integrate
    # The densities written out (scipy.stats' per-call overhead would dominate).
    log_gamma_norm = r * math.log(alpha) - math.lgamma(r)
    log_beta_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)

    def gamma_pdf(lam: float) -> float:
        return math.exp(log_gamma_norm + (r - 1) * math.log(lam) - alpha * lam) if lam > 0 else 0.0

    def beta_pdf(p: float) -> float:
        if not 0 < p < 1:
            return 0.0
        return math.exp(log_beta_norm + (a - 1) * math.log(p) + (b - 1) * math.log1p(-p))

    direct, _error = integrate.dblquad(
        lambda lam, p: individual_bgnbd(lam, p, x, t_x, T) * gamma_pdf(lam) * beta_pdf(p),
        0,
        1,
        0,
        60 / (t_x if x > 0 else T),  # e^-60 of the integrand is left beyond
        epsabs=1e-12,
        epsrel=1e-9,
    )
    closed = clv.bgnbd_log_likelihood(
        (r, alpha, a, b), np.array([float(x)]), np.array([t_x]), np.array([T])
    )
    assert math.exp(closed[0]) == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize(("x", "m"), [(1, 12.5), (4, 30.0)])
def test_the_gamma_gamma_likelihood_equals_its_integral(x: int, m: float) -> None:
    """The mean of x purchases ~ Gamma(p x, rate x nu), nu ~ Gamma(q, rate gamma):
    integrated over nu, it equals the closed form's density of the mean."""
    p, q, gamma = 5.0, 3.5, 14.0

    def joint(nu: float) -> float:
        mean = stats.gamma(p * x, scale=1 / (x * nu)).pdf(m)
        return float(mean * stats.gamma(q, scale=1 / gamma).pdf(nu))

    direct, _error = integrate.quad(joint, 0, np.inf, epsrel=1e-10)
    closed = clv.gamma_gamma_log_likelihood((p, q, gamma), np.array([float(x)]), np.array([m]))
    assert math.exp(closed[0]) == pytest.approx(direct, rel=1e-6)


def simulate(
    n: int, r: float, alpha: float, a: float, b: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD histories: each customer born at 0, observed for T days (90 to 720)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    t_x = np.zeros(n)
    T = rng.uniform(90, 720, n)
    lam = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    for i in range(n):
        now = 0.0
        while True:
            now += rng.exponential(1 / lam[i])
            if now > T[i]:
                break
            x[i] += 1
            t_x[i] = now
            if rng.random() < drop[i]:
                break
    return x, t_x, T


def test_known_parameters_are_recovered_from_simulated_histories() -> None:
    """6,000 simulated customers (seed 7) with r=0.6, alpha=40 days, a=0.8, b=2.5: the fit
    is within 15% of each parameter; Gamma-Gamma p=6, q=4, gamma=15 from 8,000 simulated
    repeat buyers, within 15%; P(alive) and the 365-day expectation are finite."""
    x, t_x, T = simulate(6000, 0.6, 40.0, 0.8, 2.5, seed=7)
    (cx, ctx, cT), w = clv.compress(x, t_x, T)
    model = clv.fit_bgnbd(cx, ctx, cT, w)
    truth = (0.6, 40.0, 0.8, 2.5)
    for got, true in zip((model.r, model.alpha, model.a, model.b), truth, strict=True):
        assert got == pytest.approx(true, rel=0.15)
    # Spend: 8,000 repeat buyers with 1 to 12 repeat purchases each (seed 11).
    rng = np.random.default_rng(11)
    counts = rng.integers(1, 13, 8000)
    nu = rng.gamma(4.0, 1 / 15.0, len(counts))  # each customer's rate, Gamma(q, gamma)
    m = np.array([rng.gamma(6.0, 1 / v, c).mean() for v, c in zip(nu, counts, strict=True)])
    spend = clv.fit_gamma_gamma(counts.astype(float), m)
    for got, true in zip((spend.p, spend.q, spend.gamma), (6.0, 4.0, 15.0), strict=True):
        assert got == pytest.approx(true, rel=0.15)
    alive = clv.p_alive(model, x, t_x, T)
    assert np.all((alive > 0) & (alive <= 1))
    assert np.all(alive[x == 0] == 1)
    ahead = clv.expected_purchases(model, 365.0, x, t_x, T)
    assert np.all(np.isfinite(ahead))
    assert np.all(clv.expected_purchases(model, 0.0, x, t_x, T) == pytest.approx(0.0))


def test_what_cannot_be_fitted_says_why() -> None:
    """Nobody ever bought again: the purchase model has no optimum (a FitError naming
    it); spend that varies without bound (q <= 1) has no expected value."""
    T = np.linspace(30, 400, 300)
    zeros = np.zeros(300)
    with pytest.raises(clv.FitError):
        clv.fit_bgnbd(zeros, zeros, T)


def test_the_holdout_intervals() -> None:
    """Newcombe's published example (56/70 vs 48/80: 0.0524 to 0.3339); Wilson bounds
    stay in [0, 1]; the bootstrap is the same twice (seeded) and brackets the observed
    difference; small groups are "not enough data"."""
    low, mid, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(mid, 4), round(high, 4)) == (0.0524, 0.2, 0.3339)
    assert wilson(0, 20)[0] == 0.0
    assert wilson(20, 20)[1] == 1.0
    treated = Group(400, 60, [2500] * 60)
    held = Group(100, 8, [2500] * 8)
    first = bootstrap_difference(treated, held)
    assert first == bootstrap_difference(treated, held)
    assert first[0] < first[1] < first[2]
    assert first[1] == pytest.approx(60 * 25 / 400 - 8 * 25 / 100)
    assert lift(treated, Group(10, 1, [2500]), minimum=50) == (
        "not enough data: 400 emailed and 10 held out, 50 of each needed ([stats] min_holdout)"
    )

"""`dripper customers predict` and the daemon's daily refit (DESIGN 17): the buyers'
summaries from the database, the BG/NBD and Gamma-Gamma fits (`dripper.engine.clv`), each
customer's `p_alive`, expected purchases over 90 and 365 days and predicted 365-day value
stored, and the fit recorded. Below `[predict] min_customers` buyers or `min_repeat` repeat
buyers, or when a fit does not converge, nothing is fitted, every value is null and the
reason is said (and recorded); never a NaN stored or shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.engine.clv import PurchaseModel, SpendModel
    from dripper.store import Store

log = logging.getLogger("dripper.run")
REFIT_EVERY = timedelta(days=1)  # the daemon's refit
DAY = 86400.0


@dataclass(frozen=True)
class Prediction:
    """What a fit did: `--json` prints `as_json`."""

    fitted: bool
    customers: int  # buyers (customers with a purchase at or before now)
    repeat_buyers: int
    reason: str = ""  # why nothing was fitted, or what was left out
    purchase_model: PurchaseModel | None = None
    spend_model: SpendModel | None = None
    scored: int = 0  # customers given values

    def as_json(self) -> dict[str, Any]:
        return {
            "fitted": self.fitted,
            "customers": self.customers,
            "repeat_buyers": self.repeat_buyers,
            "purchase_model": self.purchase_model.as_json() if self.purchase_model else None,
            "spend_model": self.spend_model.as_json() if self.spend_model else None,
            "reason": self.reason or None,
        }


def predict(store: Store, config: Config, *, now: datetime) -> Prediction:
    """Fit, score and store; the outcome (fitted or why not), recorded either way."""
    from dripper.engine import clv
    from dripper.store import predict as stored

    with store.reading() as conn:
        found = stored.summaries(conn, now=now, currency=config.currency)
        last = stored.latest_fit(conn)
    # Buyers only grow while the clock moves on: a customer given values by an earlier
    # fit is among today's buyers, and nobody else needs clearing (a scan of every row).
    onward = last is not None and last["fitted"] and now >= last["fitted_at"]
    buyers = len(found)
    repeat = int(np.count_nonzero(found.x > 0))
    rules = config.predict
    reason = ""
    if buyers < rules.min_customers:
        reason = (
            f"{buyers} buyer(s), {rules.min_customers} needed ([predict] min_customers): "
            "nothing fitted, the predicted values stay empty"
        )
    elif repeat < rules.min_repeat:
        reason = (
            f"{repeat} repeat buyer(s) of {buyers}, {rules.min_repeat} needed ([predict] "
            "min_repeat): nothing fitted, the predicted values stay empty"
        )
    if reason:
        return _not_fitted(store, now, buyers, repeat, reason)

    x = found.x
    t_x = found.last_day - found.first_day
    T = now.timestamp() / DAY - found.first_day  # the first day's midnight to now
    (cx, ctx, cT), weights = clv.compress(x, t_x, T)
    try:
        purchases = clv.fit_bgnbd(cx, ctx, cT, weights)
    except clv.FitError as exc:
        return _not_fitted(store, now, buyers, repeat, f"the purchase model: {exc}")
    alive = clv.p_alive(purchases, x, t_x, T)
    in_90 = clv.expected_purchases(purchases, 90.0, x, t_x, T)
    in_365 = clv.expected_purchases(purchases, 365.0, x, t_x, T)

    spend: SpendModel | None = None
    note = ""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(x > 0, found.repeat_spent / np.where(x > 0, x, 1), 0.0)
    usable = (x > 0) & (mean > 0)
    if np.count_nonzero(usable) < 2:
        note = "no repeat purchase with a positive amount: predicted_clv_365d stays empty"
    else:
        try:
            spend = clv.fit_gamma_gamma(x[usable], mean[usable])
        except clv.FitError as exc:
            note = f"the spend model: {exc}"
    if spend is not None:
        per_order = clv.expected_spend(spend, x, mean)
        # A repeat buyer whose repeat orders were all free has no spend to project.
        per_order = np.where((x > 0) & (mean <= 0), np.nan, per_order)
        value = in_365 * per_order
    else:
        value = np.full(buyers, np.nan)
    values = [np.round(v, 6) for v in (alive, in_90, in_365, value)]
    with store.transaction() as conn:
        stored.save(conn, found.ids, values, others=not onward)
        stored.record_fit(
            conn,
            now=now,
            fitted=True,
            reason=note,
            customers_=buyers,
            repeat_buyers=repeat,
            purchase_model=purchases.as_json(),
            spend_model=spend.as_json() if spend else None,
        )
    left = int(np.count_nonzero(~np.isfinite(in_365)))
    if left:
        note = (note + "; " if note else "") + (
            f"{left} customer(s)' expected purchases could not be computed: left empty"
        )
    return Prediction(True, buyers, repeat, note, purchases, spend, buyers)


def _not_fitted(store: Store, now: datetime, buyers: int, repeat: int, reason: str) -> Prediction:
    from dripper.store import predict as stored

    with store.transaction() as conn:
        stored.clear(conn)
        stored.record_fit(
            conn,
            now=now,
            fitted=False,
            reason=reason,
            customers_=buyers,
            repeat_buyers=repeat,
            purchase_model=None,
            spend_model=None,
        )
    return Prediction(False, buyers, repeat, reason)


def refit_due(store: Store, *, now: datetime) -> bool:
    """The daemon refits once a day (the last fit, fitted or not, a day old)."""
    from dripper.store import predict as stored

    with store.reading() as conn:
        last = stored.latest_fit(conn)
    return last is None or now - last["fitted_at"] >= REFIT_EVERY

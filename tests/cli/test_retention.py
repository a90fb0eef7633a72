"""Retention science (DESIGN 17) through the real commands and daemon passes on each
database: a holdout's customers get the receipt but not the offers (their steps marked
held), `stats` compares both groups with a lift and its interval (or "not enough data");
the set-based newsletter run holds out exactly whom the planner would; `customers
predict` fits the lifetime models to the database's own summaries (same-day purchases one
purchase) and stores every value, or says why not and stores none; the daemon refits
once a day."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import Result

from dripper.cli import cli
from dripper.engine import clv
from dripper.engine.plan import variant_for
from dripper.store import open_store
from dripper.store.schema import enrollments, outbox, prediction_fits
from tests.cli.conftest import Project

ENV = {"DRIPPER_SECRET": "retention-tests-secret-0123456789"}
T0 = datetime(2027, 1, 4, 15, tzinfo=UTC)


def invoke(project: Project, now: datetime, *args: str) -> Result:
    return project.runner.invoke(
        cli,
        ["--config", str(project.root / "config.toml"), "--now", now.isoformat(), *args],
        env=ENV,
    )


def ok(project: Project, now: datetime, *args: str) -> str:
    result = invoke(project, now, *args)
    assert result.exit_code == 0, result.output
    return result.output


def db_url(project: Project) -> str:
    text = (project.root / "config.toml").read_text()
    url = text.split('url = "', 1)[1].split('"', 1)[0]
    return url.replace("sqlite:///dripper.db", f"sqlite:///{project.root / 'dripper.db'}")


def held(email: str, campaign: str, percent: float) -> bool:
    """plan.held_out, written out: the hash the test holds the daemon to."""
    return variant_for(email, campaign, "(holdout)", 10_000) < round(percent * 100)


def write_events(project: Project, rows: list[tuple[str, str, datetime, str, float]]) -> Path:
    path = project.root / f"events-{len(list(project.root.glob('events-*.csv')))}.csv"
    lines = ["type,email,at,id,amount"]
    lines += [f"{t},{e},{at.isoformat()},{i},{amount:.2f}" for t, e, at, i, amount in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_holdout_gets_the_receipt_not_the_offer_and_stats_compare(project: Project) -> None:
    """600 first purchases through `events import --enroll`: welcome's 10% holdout is the
    hashed customers exactly; on day 15 their second-sale offer is marked held (the
    thank-you went to everyone); the emailed buy again more; `stats` counts both groups'
    conversions and revenue per customer exactly, with Newcombe's interval around the
    difference; with [stats] min_holdout above the held group: "not enough data"."""
    emails = [f"c{i}@example.com" for i in range(600)]
    first = [("purchase", e, T0, f"o{i}", 20.0) for i, e in enumerate(emails)]
    ok(project, T0, "events", "import", str(write_events(project, first)), "--enroll")
    ok(project, T0 + timedelta(minutes=5), "run", "--once")
    day15 = T0 + timedelta(days=15)
    out = ok(project, day15, "run", "--once")
    out_of = [e for e in emails if held(e, "welcome", 10)]
    assert f"{len(out_of)} held" in out
    store = open_store(db_url(project))
    try:
        with store.reading() as conn:
            e, o = enrollments.c, outbox.c
            flagged = dict(
                conn.execute(
                    sa.select(sa.text("customers.email"), e.held)
                    .select_from(
                        enrollments.join(
                            sa.table("customers"), sa.text("customers.id = enrollments.customer_id")
                        )
                    )
                    .where(e.campaign == "welcome")
                ).all()
            )
            statuses: dict[str, object] = dict(
                conn.execute(
                    sa.select(o.step, sa.func.count())
                    .where(o.campaign == "welcome", o.status == "held")
                    .group_by(o.step)
                ).all()
            )
            sent_thanks = conn.execute(
                sa.select(sa.func.count()).where(o.step == "thank-you", o.status == "sent")
            ).scalar_one()
    finally:
        store.close()
    assert {a for a, h in flagged.items() if h} == set(out_of)
    assert statuses == {"second-sale": len(out_of)}
    assert sent_thanks == 600  # the receipt is never withheld

    rng = random.Random(5)
    again = [
        e for e in emails if rng.random() < (0.15 if e in out_of else 0.4)
    ]  # the offers work (in this made-up shop)
    second = [
        ("purchase", e, day15 + timedelta(hours=2), f"r{i}", 30.0) for i, e in enumerate(again)
    ]
    ok(project, day15, "events", "import", str(write_events(project, second)))
    report = json.loads(ok(project, day15 + timedelta(days=1), "stats", "--json"))
    welcome = next(c for c in report["campaigns"] if c["campaign"] == "welcome")
    holdout = welcome["holdout"]
    kept = [e for e in emails if e not in out_of]
    n_t, n_h = len(kept), len(out_of)
    k_t = sum(e in again for e in kept)
    k_h = sum(e in again for e in out_of)
    assert holdout["treated"] == {
        "customers": n_t, "conversions": k_t, "conversion_rate": round(k_t / n_t, 6),
        "revenue_per_customer": round(30.0 * k_t / n_t, 4),
    }  # fmt: skip
    assert holdout["held"]["customers"] == n_h
    assert holdout["held"]["conversions"] == k_h
    assert n_h >= 50  # the hash holds out 10% of these 600: enough for a lift
    low, mid, high = holdout["lift"]["conversion"]
    assert mid == pytest.approx(k_t / n_t - k_h / n_h, abs=1e-6)
    assert low < mid < high
    r_low, r_mid, r_high = holdout["lift"]["revenue_per_customer"]
    assert r_mid == pytest.approx(30.0 * (k_t / n_t - k_h / n_h), abs=1e-3)
    assert r_low < r_mid < r_high
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("min_holdout = 50 ", f"min_holdout = {n_h + 1} "))
    report = json.loads(ok(project, day15 + timedelta(days=1), "stats", "--json"))
    welcome = next(c for c in report["campaigns"] if c["campaign"] == "welcome")
    assert welcome["holdout"]["lift"] is None
    assert welcome["holdout"]["verdict"].startswith("not enough data")
    printed = ok(project, day15 + timedelta(days=1), "stats")
    assert "holdout 10%, held out:" in printed
    assert "lift: not enough data" in printed


def test_the_set_based_newsletter_run_holds_out_whom_the_planner_would(project: Project) -> None:
    """A newsletter with `holdout: 20%`, planned in SQL for 400 subscribers: held exactly
    where plan.held_out says, and its edition marked held for them, sent to the rest."""
    path = project.root / "campaigns" / "value-newsletter.yaml"
    path.write_text(path.read_text().replace("steps:", "holdout: 20%\nsteps:", 1))
    sheet = ["email,first_name"] + [f"n{i}@example.com,N{i}" for i in range(400)]
    (project.root / "many.csv").write_text("\n".join(sheet) + "\n")
    ok(project, T0, "customers", "import", str(project.root / "many.csv"))
    ok(project, datetime(2027, 1, 5, 23, tzinfo=UTC), "run", "--once")
    store = open_store(db_url(project))
    try:
        with store.reading() as conn:
            found: dict[str, object] = dict(
                conn.execute(
                    sa.text(
                        "SELECT c.email, e.held FROM enrollments e JOIN customers c "
                        "ON c.id = e.customer_id WHERE e.campaign = 'value-newsletter'"
                    )
                ).all()
            )
            statuses: dict[str, object] = dict(
                conn.execute(
                    sa.text(
                        "SELECT c.email, o.status FROM outbox o JOIN customers c "
                        "ON c.id = o.customer_id WHERE o.campaign = 'value-newsletter'"
                    )
                ).all()
            )
    finally:
        store.close()
    assert len(found) >= 400
    for address, flag in found.items():
        assert bool(flag) == held(address, "value-newsletter", 20), address
        assert statuses[address] == ("held" if flag else "sent"), address
    assert 40 < sum(map(bool, found.values())) < 120


def history(n: int, seed: int) -> list[tuple[str, str, datetime, str, float]]:
    """`n` customers' purchases over a year before T0 (some twice on one day)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start = T0 - timedelta(days=rng.uniform(60, 400))
        at = start
        for k in range(rng.choice([1, 1, 2, 3, 5, 8])):
            if k:
                at += timedelta(days=rng.expovariate(1 / 30))
            if at > T0:
                break
            rows.append(("purchase", f"b{i}@example.com", at, f"p{i}-{k}", rng.uniform(10, 60)))
            if rng.random() < 0.1:  # a second order the same day: one purchase (summed)
                same = at.replace(hour=23, minute=0) if at.hour < 23 else at
                rows.append(("purchase", f"b{i}@example.com", same, f"p{i}-{k}b", 5.0))
    return rows


def summaries_of(
    rows: list[tuple[str, str, datetime, str, float]],
) -> dict[str, tuple[float, float, float, float]]:
    """DESIGN 17's summary, computed here from the rows: (x, t_x, T, repeat spend)."""
    days: dict[str, dict[datetime, float]] = {}
    for _type, email, at, _id, amount in rows:
        day = datetime(at.year, at.month, at.day, tzinfo=UTC)
        days.setdefault(email, {}).setdefault(day, 0.0)
        days[email][day] += round(amount, 2)
    found: dict[str, tuple[float, float, float, float]] = {}
    for email, per_day in days.items():
        ordered = sorted(per_day)
        x = len(ordered) - 1
        t_x = (ordered[-1] - ordered[0]).days
        T = (T0 - ordered[0]).total_seconds() / 86400
        found[email] = (x, t_x, T, sum(per_day[d] for d in ordered[1:]))
    return found


def test_predict_fits_the_databases_summaries_and_stores_every_value(project: Project) -> None:
    """300 buyers: `customers predict --json` fits the BG/NBD the engine fits to the same
    summaries computed here from the rows (same-day orders merged), parameter for
    parameter; every buyer gets finite values in customers show, top --predicted lists
    them best first, stats counts the best 20% at risk; below min_customers nothing is
    fitted, the values are emptied and the reason said; the daemon refits once a day."""
    rows = history(300, seed=3)
    ok(project, T0, "events", "import", str(write_events(project, rows)))
    fit = json.loads(ok(project, T0, "customers", "predict", "--json"))
    mine = summaries_of(rows)
    x, t_x, T, _spent = (np.array([v[k] for v in mine.values()], dtype=float) for k in range(4))
    assert (fit["fitted"], fit["customers"], fit["repeat_buyers"]) == (
        True, 300, int(np.count_nonzero(x > 0))
    )  # fmt: skip
    (cx, ctx, cT), w = clv.compress(x, t_x, T)
    model = clv.fit_bgnbd(cx, ctx, cT, w)
    purchase = fit["purchase_model"]
    assert (purchase["name"], purchase["time_unit"]) == ("bg-nbd", "day")
    for key in ("r", "alpha", "a", "b"):
        assert purchase[key] == pytest.approx(getattr(model, key), rel=1e-4)
    assert fit["spend_model"]["name"] == "gamma-gamma"
    assert fit["spend_model"]["q"] > 1

    sheet = json.loads(project.run("customers", "show", "b0@example.com", "--json").output)
    customer = sheet["customer"]
    for key in (
        "p_alive",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "predicted_clv_365d",
    ):
        assert isinstance(customer[key], float), key
    assert 0 < customer["p_alive"] <= 1
    assert "predicted (365 days)" in project.run("customers", "show", "b0@example.com").output
    top = json.loads(ok(project, T0, "customers", "top", "--predicted", "--json"))
    values = [p["predicted_clv_365d"] for p in top["listed"]]
    assert values == sorted(values, reverse=True)
    assert top["customers"] == 300
    stats = json.loads(ok(project, T0, "stats", "--json"))
    assert stats["at_risk"]["best_customers"] > 0

    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("min_customers = 200 ", "min_customers = 500 "))
    said = ok(project, T0, "customers", "predict")
    assert said.startswith("not fitted: 300 buyer(s), 500 needed ([predict] min_customers)")
    emptied = json.loads(project.run("customers", "show", "b0@example.com", "--json").output)
    assert emptied["customer"]["p_alive"] is None
    assert emptied["customer"]["predicted_clv_365d"] is None
    assert "No predicted values" in ok(project, T0, "customers", "top", "--predicted")

    def fits() -> int:
        store = open_store(db_url(project))
        try:
            with store.reading() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(prediction_fits)
                    ).scalar_one()
                )
        finally:
            store.close()

    before = fits()
    ok(project, T0 + timedelta(hours=1), "run", "--once")
    ok(project, T0 + timedelta(hours=2), "run", "--once")
    assert fits() == before  # the last fit (by hand) is not a day old
    ok(project, T0 + timedelta(days=1, hours=1), "run", "--once")
    assert fits() == before + 1


def test_no_purchases_and_free_orders_say_why(project: Project) -> None:
    """No buyer at all, then only one-time buyers: not fitted, the reason said, --json with
    nulls; with some repeat orders free: fitted, and no NaN is stored or shown."""
    fit = json.loads(ok(project, T0, "customers", "predict", "--json"))
    assert fit == {
        "fitted": False, "customers": 0, "repeat_buyers": 0, "purchase_model": None,
        "spend_model": None,
        "reason": "0 buyer(s), 200 needed ([predict] min_customers): nothing fitted, "
        "the predicted values stay empty",
    }  # fmt: skip
    once = [("purchase", f"one{i}@example.com", T0 - timedelta(days=i % 90), f"one{i}", 9.0)
            for i in range(250)]  # fmt: skip
    ok(project, T0, "events", "import", str(write_events(project, once)))
    said = ok(project, T0, "customers", "predict")
    assert said.startswith("not fitted: 0 repeat buyer(s) of 250, 50 needed ([predict] min_repeat)")
    rows = [
        (t, e, at, i, 0.0 if i.endswith("-1") or i.endswith("-2") else amount)
        for t, e, at, i, amount in history(300, seed=9)
    ]
    ok(project, T0, "events", "import", str(write_events(project, rows)))
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("min_repeat = 50 ", "min_repeat = 20 "))
    out = ok(project, T0, "customers", "predict")
    assert out.startswith("fitted on 550 buyer(s)")
    days: dict[str, set[str]] = {}
    for _t, email, at, _i, _amount in rows:
        days.setdefault(email, set()).add(at.date().isoformat())
    free = next(e for e, d in days.items() if len(d) == 2)  # one repeat day, and it was free
    sheet = json.loads(project.run("customers", "show", free, "--json").output)["customer"]
    assert isinstance(sheet["p_alive"], float)
    assert sheet["predicted_clv_365d"] is None
    shown = json.loads(ok(project, T0, "customers", "predict", "--json"))
    text = json.dumps(shown)
    assert "NaN" not in text
    assert "Infinity" not in text

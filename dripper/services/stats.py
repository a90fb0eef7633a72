"""`dripper stats` as data: per campaign, step and A/B variant, the funnel of DESIGN 8, which
variant is likely best, the second sale, one-click answers and replies, and (asked for)
the customers who have not heard from the shop in too long. The CLI prints it; the preview
page draws it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dripper.engine.stats import Funnel, chances, median_days, share

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.store import Connection, Store
    from dripper.store.spend import Top

SHOWN = 10  # customers listed by address before the rest is counted


def collect(
    store: Store,
    campaigns: Sequence[Campaign],
    *,
    now: datetime,
    campaign: str | None = None,
    since: datetime | None = None,
    cadence: timedelta | None = None,
    currency: str = "USD",
    topics: Mapping[str, str] | None = None,
    min_holdout: int = 50,
) -> dict[str, Any]:
    """Everything `dripper stats` shows, as one JSON-ready object. On PostgreSQL the
    queries run on two connections at once, over one snapshot (`Store.readers`)."""
    from concurrent.futures import ThreadPoolExecutor

    from dripper.store import stats

    welcome = _welcome(campaigns)

    # Two halves of about equal cost (measured on bench/stats.py's shop).
    def sends(conn: Connection) -> tuple[Any, ...]:
        return (
            stats.funnels(conn, campaign=campaign, since=since),
            stats.conversions(conn, campaign=campaign, since=since, currency=currency),
            stats.answers(conn, campaign=campaign, since=since),
        )

    def the_rest(conn: Connection) -> tuple[Any, ...]:
        from dripper.store import predict, tasks, webhooks
        from dripper.store.consent import topic_choices

        return (
            stats.second_sale(conn, welcome),
            stats.waiting_replies(conn),
            stats.silent(conn, cadence=cadence, now=now, limit=SHOWN) if cadence else None,
            topic_choices(conn) if topics else [],
            tasks.step_counts(conn, now=now),
            webhooks.outcomes(conn),
            predict.best_at_risk(conn),
        )

    with store.readers(2, scans=True) as (one, other):
        if store.side_by_side:
            with ThreadPoolExecutor(max_workers=1) as pool:
                later = pool.submit(the_rest, other)
                rows, converted, answers = sends(one)
                second, waiting, silent, chosen, made, posted, risk = later.result()
        else:
            rows, converted, answers = sends(one)
            second, waiting, silent, chosen, made, posted, risk = the_rest(other)
    for key, found in converted.items():
        row = rows.setdefault(key, Funnel())
        row.conversions, row.revenue, row.refunds = found.count, found.revenue, found.refunds
        row.revenue_other = dict(found.revenue_other)
    order = {
        c.name: [s.id for s in c.steps if not s.personal]  # tasks and webhooks: below
        for c in campaigns
        if campaign in (None, c.name)
    }
    variants = {(c.name, s.id): len(s.subjects) for c in campaigns for s in c.steps}
    report: dict[str, Any] = {"campaigns": _campaigns(rows, order, variants), "currency": currency}
    report["second_sale"] = [
        {
            "reached_by_welcome": s.reached,
            "customers": s.customers,
            "bought_again": s.bought_again,
            "share": share(s.bought_again, s.customers),
            "median_days_to_second": median_days(s.days_to_second),
        }
        for s in second
    ]
    replies: dict[str, int] = defaultdict(int)
    for (name, _step, _variant), row in rows.items():
        replies[name] += row.replies
    report["listening"] = {
        "answers": answers,
        "replies_by_campaign": dict(sorted(replies.items())),
        "waiting_replies": [
            {
                "email": w.email,
                "replies": w.replies,
                "last_subject": w.subject,
                "last_received_at": w.received_at.isoformat(),
            }
            for w in waiting[:SHOWN]
        ],
        "waiting_count": len(waiting),
    }
    if topics:  # who left each topic on the preference page (DESIGN 13)
        report["topics"] = [
            {
                "topic": name,
                "label": label,
                "left": sum(n for kept, n in chosen if name not in kept),
            }
            for name, label in topics.items()
        ]
    held = [c for c in campaigns if c.holdout and campaign in (None, c.name)]
    if held:  # DESIGN 17: emailed against held out, per campaign with a holdout
        with store.reading() as conn:
            for entry in report["campaigns"]:
                found = next((c for c in held if c.name == entry["campaign"]), None)
                if found is not None:
                    entry["holdout"] = holdout_report(
                        conn, found, now=now, currency=currency, minimum=min_holdout
                    )
    best, risky = risk  # DESIGN 17: the best 20% by spend the model sees drifting away
    report["at_risk"] = {"best_customers": best, "at_risk": risky, "p_alive_below": 0.5}
    report["tasks"] = _personal(made, campaigns, campaign, "task")  # DESIGN 16
    report["webhooks"] = _personal(posted, campaigns, campaign, "webhook")
    if silent is not None and cadence is not None:
        count, first = silent
        report["cadence"] = {
            "interval_days": cadence.days,
            "count": count,
            "customers": [
                {
                    "email": s.email,
                    "last_email": s.last_email.isoformat() if s.last_email else None,
                }
                for s in first
            ],
        }
    return report


def _campaigns(
    rows: dict[tuple[str, str, int], Funnel],
    order: dict[str, list[str]],
    subjects: dict[tuple[str, str], int],
) -> list[dict[str, Any]]:
    """Every campaign of the project (one that sent nothing yet shows zeros: that is news
    too), then any that left the project but has history; steps in campaign order."""
    by_campaign: dict[str, dict[str, dict[int, Funnel]]] = defaultdict(lambda: defaultdict(dict))
    for name, step_ids in order.items():
        for step_id in step_ids:
            by_campaign[name][step_id] = {}
    for (name, step, variant), row in rows.items():
        by_campaign[name][step][variant] = row
    found = []
    for name in sorted(by_campaign, key=lambda n: (n not in order, n)):
        steps = by_campaign[name]
        known = order.get(name, [])
        ranked = sorted(steps, key=lambda s: (known.index(s) if s in known else len(known), s))
        step_rows: list[dict[str, Any]] = []
        variant_rows: list[dict[str, Any]] = []
        for step in ranked:
            variants = steps[step]
            for variant in range(subjects.get((name, step), 1)):  # none sent yet: zeros
                variants.setdefault(variant, Funnel())
            total = Funnel()
            for row in variants.values():
                total.add(row)
            step_rows.append({"step": step, "variant": None, **total.as_row()})
            if len(variants) > 1:
                odds = chances(variants)
                for variant in sorted(variants):
                    variant_rows.append(
                        {
                            "step": step,
                            "variant": variant,
                            **variants[variant].as_row(),
                            "chance_best": odds.chance_best[variant],
                            "chance_on": odds.metric,
                        }
                    )
        found.append({"campaign": name, "steps": step_rows, "variants": variant_rows})
    return found


HOLDOUT_WINDOW = timedelta(days=30)  # without a goal's `within`: a purchase within 30 days


def holdout_report(
    conn: Connection, campaign: Campaign, *, now: datetime, currency: str, minimum: int
) -> dict[str, Any]:
    """`stats`' `holdout` of one campaign: both groups and the lift, or why none yet."""
    from dripper.engine.holdout import lift
    from dripper.store.holdouts import groups

    goal = campaign.goal
    event = goal.event if goal is not None else "purchase"
    window = goal.within.approx if goal is not None and goal.within else HOLDOUT_WINDOW
    emailed, held = groups(
        conn, campaign.name, goal=event, window=window, now=now, currency=currency
    )
    found = lift(emailed, held, minimum=minimum)
    return {
        "share": campaign.holdout,
        "goal": event,
        "window_days": round(window.total_seconds() / 86400, 2),
        "treated": emailed.as_json(),
        "held": held.as_json(),
        "lift": None if isinstance(found, str) else found.as_json(),
        "verdict": found if isinstance(found, str) else _verdict_of(found),
        "method": "conversion: Newcombe's hybrid score interval (method 10); revenue per "
        "customer: percentile bootstrap, 10,000 resamples, seeded",
    }


def _verdict_of(found: Any) -> str:
    """The conversion lift in words: percentage points, with its 95% interval."""
    low, mid, high = (100 * v for v in found.conversion)
    span = f"{mid:+.1f} points (95%: {low:+.1f} to {high:+.1f})"
    if low > 0:
        return f"the emails raise conversion: {span}"
    if high < 0:
        return f"the emails lower conversion: {span}"
    return f"no clear effect on conversion yet: {span}"


def _personal(
    counts: Mapping[tuple[str, str], Mapping[str, int]],
    campaigns: Sequence[Campaign],
    only: str | None,
    kind: str,
) -> list[dict[str, Any]]:
    """Per task (or webhook) step, in the campaigns' order, zeros for one with nothing yet;
    then steps with history whose campaign or step left the project."""
    keys: tuple[str, ...] = ("created", "done", "skipped", "overdue", "open", "cancelled")
    if kind == "webhook":
        keys = ("delivered", "retrying", "failed", "cancelled", "skipped")
    known = [
        (c.name, s.id)
        for c in campaigns
        if only in (None, c.name)
        for s in c.steps
        if s.kind == kind
    ]
    rest = sorted(k for k in counts if k not in known and only in (None, k[0]))
    return [
        {
            "campaign": name,
            "step": step,
            **{key: counts.get((name, step), {}).get(key, 0) for key in keys},
        }
        for name, step in [*known, *rest]
    ]


def _welcome(campaigns: Sequence[Campaign]) -> list[str]:
    """The campaigns that follow a first purchase and aim at the next one."""
    from dripper.campaigns import EventTrigger

    return [
        c.name
        for c in campaigns
        if isinstance(c.trigger, EventTrigger)
        and c.trigger.event == "purchase"
        and c.goal is not None
        and c.goal.event == "purchase"
    ]


def top_customers(store: Store, *, percent: int, limit: int = SHOWN) -> Top:
    """The best `percent` of customers by lifetime spend, and the share of revenue they
    bring (ranked now, as the next planning pass would rank them)."""
    from dripper.store import spend

    with store.reading() as conn:
        return spend.top(conn, percent=percent, limit=limit)


def mark_answered(store: Store, email: str, *, now: datetime) -> int | None:
    """A person answered `email`'s replies: they leave the to-do of `dripper stats`.
    How many replies that closed; None when there is no such customer."""
    from dripper.store import stats

    customer = store.get_customer(email)
    if customer is None:
        return None
    with store.transaction() as conn:
        return stats.mark_answered(conn, customer.id, now=now)


def daily_hits(
    store: Store, *, campaign: str | None = None, since: datetime | None = None
) -> dict[str, dict[str, int]]:
    """People's opens and clicks per day (the picture of the preview's `/stats` page)."""
    from dripper.store import stats

    with store.reading() as conn:
        return stats.hits_by_day(conn, campaign=campaign, since=since)

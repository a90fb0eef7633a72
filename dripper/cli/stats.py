"""`dripper stats [CAMPAIGN] [--since DATE] [--json] [--cadence 6w]`: what worked."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@click.argument("campaign", required=False)
@click.option("--since", metavar="DATE", help="Count sends and what came back since then.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (DESIGN 8's keys).")
@click.option(
    "--cadence",
    metavar="DURATION",
    help="Also list subscribed customers not emailed for longer, with nothing planned (6w).",
)
@config_option
def stats(campaign: str | None, since: str | None, as_json: bool, cadence: str | None) -> None:
    """Per campaign, step and A/B variant: sent, delivered, opens and clicks (people and
    machines apart), replies, unsubscribes, complaints, conversions and revenue; which
    variant is likely best; the second sale; answers and replies waiting."""
    from pathlib import Path

    from dripper.campaigns import load_campaigns
    from dripper.errors import InputError
    from dripper.services.stats import collect
    from dripper.timeparse import parse_duration, parse_instant

    ctx = app()
    config = ctx.config
    campaigns, _problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    if campaign is not None and campaign not in {c.name for c in campaigns}:
        known = ", ".join(sorted(c.name for c in campaigns)) or "none"
        raise InputError(f"no campaign named {campaign!r} (campaigns: {known})")
    try:
        start = parse_instant(since) if since else None
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None
    try:
        interval = parse_duration(cadence) if cadence else None
    except ValueError as exc:
        raise InputError(f"--cadence: {exc}") from None
    report = collect(
        ctx.store(),
        campaigns,
        now=ctx.now(),
        campaign=campaign,
        since=start,
        cadence=interval,
        currency=config.currency,
        topics=config.topics,
        min_holdout=config.stats.min_holdout,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console

    from dripper.cli.common import is_terminal

    # In a pipe rich assumes 80 columns; a report in a file or mail reads better unwrapped.
    # No markup: campaign names, answers and addresses are printed as they are.
    console = Console(highlight=False, markup=False, width=None if is_terminal() else 120)
    _print(console, report)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


COLUMNS = (
    "step",
    "sent",
    "deliv.",
    "opened",
    "clicked",
    "replied",
    "unsub.",
    "converted",
    "revenue",
)


def _cells(row: dict[str, Any]) -> list[str]:
    """Counts, with the rates (of delivered) of what people did."""

    def both(count: int, rate: float | None) -> str:
        return f"{count:,}" if rate is None else f"{count:,} {100 * rate:.0f}%"

    return [
        f"{row['sent']:,}",
        f"{row['delivered']:,}",
        both(row["unique_opens"], row["open_rate"]),
        both(row["unique_clicks"], row["click_rate"]),
        f"{row['replies']:,}",
        f"{row['unsubscribes']:,}",
        both(row["conversions"], row["conversion_rate"]),
        f"{row['revenue']:,.2f}",
    ]


def _money_apart(steps: list[dict[str, Any]], currency: str) -> str:
    """What the revenue column leaves out: what refunds took off it, and the revenue in
    other currencies (never added together)."""
    refunds = sum(float(s.get("refunds") or 0) for s in steps)
    other: dict[str, float] = {}
    for step in steps:
        for code, amount in (step.get("revenue_other") or {}).items():
            other[code] = other.get(code, 0.0) + float(amount)
    parts = []
    if refunds:
        parts.append(f"refunds of {refunds:,.2f} {currency} already taken off")
    if other:
        listed = ", ".join(f"{amount:,.2f} {code}" for code, amount in sorted(other.items()))
        parts.append(f"not added in: {listed}")
    return "; ".join(parts)


def _verdict(variants: list[dict[str, Any]]) -> str:
    """Which variant is likely best, or why that cannot be said yet."""
    from dripper.engine.stats import MIN_DELIVERED

    if any(r["chance_best"] is None for r in variants):
        sizes = ", ".join(f"{r['delivered']:,}" for r in variants)
        return (
            f"not enough data yet (each variant needs {MIN_DELIVERED} delivered; they have {sizes})"
        )
    odds = ", ".join(
        f"variant {r['variant']} {100 * r['chance_best']:.0f}% (n={r['delivered']:,})"
        for r in variants
    )
    return f"chance of being best on {variants[0]['chance_on']}: {odds}"


def _print(console: Console, report: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if not report["campaigns"]:
        console.print("Nothing sent yet.")
    for campaign in report["campaigns"]:
        table = Table(
            title=Text(campaign["campaign"], style="bold"),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for column in COLUMNS:
            table.add_column(column, justify="left" if column == "step" else "right")
        machines = [0, 0, 0, 0]  # machine opens, scanner clicks, bounced, complaints
        for step in campaign["steps"]:  # in the campaign's order, each with its variants
            variants = [r for r in campaign["variants"] if r["step"] == step["step"]]
            for row, label in [(step, step["step"])] + [
                (r, f"  variant {r['variant']}") for r in variants
            ]:
                table.add_row(label, *_cells(row))
            machines[0] += step["opens_machine"]
            machines[1] += step["clicks_scanner"]
            machines[2] += step["bounced"]
            machines[3] += step["complaints"]
        console.print(table)
        console.print(
            f"  apart: {machines[0]:,} machine opens, {machines[1]:,} scanner clicks "
            f"(never in a rate); {machines[2]:,} bounced, {machines[3]:,} complaints"
        )
        money = _money_apart(campaign["steps"], report["currency"])
        if money:
            console.print(f"  revenue in {report['currency']}, {money}")
        for step in campaign["steps"]:
            variants = [r for r in campaign["variants"] if r["step"] == step["step"]]
            if variants:
                console.print(f"  A/B {step['step']}: {_verdict(variants)}")
        holdout = campaign.get("holdout")
        if holdout is not None:  # DESIGN 17: emailed against held out
            for label, key in (("emailed", "treated"), ("held out", "held")):
                side = holdout[key]
                rate, per = side["conversion_rate"], side["revenue_per_customer"]
                console.print(
                    f"  holdout {holdout['share']:g}%, {label}: {side['customers']:,} customers, "
                    f"{side['conversions']:,} reached {holdout['goal']} within "
                    f"{holdout['window_days']:g} days ({_pct(rate)}), "
                    f"{'-' if per is None else f'{per:,.2f}'} {report['currency']} per customer"
                )
            console.print(f"  lift: {holdout['verdict']}")
            lift = holdout["lift"]
            if lift is not None:
                low, mid, high = lift["revenue_per_customer"]
                console.print(
                    f"  revenue per customer: {mid:+,.2f} {report['currency']} "
                    f"(95%: {low:+,.2f} to {high:+,.2f})"
                )
        console.print()
    for group in report["second_sale"]:
        who = "reached by the welcome sequence" if group["reached_by_welcome"] else "not reached"
        if group["customers"]:
            median = group["median_days_to_second"]
            after = f", after {median} days (median)" if median is not None else ""
            console.print(
                f"Second sale, {who}: {group['bought_again']:,} of {group['customers']:,} "
                f"bought again ({_pct(group['share'])}){after}"
            )
    risk = report.get("at_risk")
    if risk and risk["best_customers"]:  # DESIGN 17
        console.print(
            f"At risk: {risk['at_risk']:,} of the best {risk['best_customers']:,} customers "
            f"(top 20% by spend) have p_alive below {risk['p_alive_below']:g}"
            + ("" if risk["at_risk"] else " (or no prediction yet: dripper customers predict)")
        )
    for row in report.get("tasks", []):  # tasks for a person (DESIGN 16)
        console.print(
            f"Tasks {row['campaign']}/{row['step']}: {row['created']:,} created, "
            f"{row['done']:,} done, {row['skipped']:,} skipped, {row['overdue']:,} overdue"
            + (f", {row['cancelled']:,} cancelled" if row["cancelled"] else "")
        )
    for row in report.get("webhooks", []):
        console.print(
            f"Webhook {row['campaign']}/{row['step']}: {row['delivered']:,} delivered, "
            f"{row['retrying']:,} retrying, {row['failed']:,} failed"
        )
    for topic in report.get("topics", []):
        console.print(f"Topic {topic['topic']} ({topic['label']}): {topic['left']:,} left it")
    listening = report["listening"]
    for question, answers in sorted(listening["answers"].items()):
        counts = ", ".join(f"{a}: {n}" for a, n in sorted(answers.items()))
        console.print(f"Answers to {question}: {counts}")
    replies = {c: n for c, n in listening["replies_by_campaign"].items() if n}
    if replies:
        console.print("Replies: " + ", ".join(f"{c} {n}" for c, n in replies.items()))
    if listening["waiting_count"]:
        names = ", ".join(w["email"] for w in listening["waiting_replies"])
        more = listening["waiting_count"] - len(listening["waiting_replies"])
        console.print(
            f"Replies nobody has answered yet: {listening['waiting_count']} ({names}"
            + (f" and {more} more" if more > 0 else "")
            + "); `dripper customers answered EMAIL` once you have"
        )
    cadence = report.get("cadence")
    if cadence is not None:
        names = ", ".join(c["email"] for c in cadence["customers"])
        more = cadence["count"] - len(cadence["customers"])
        console.print(
            f"Not emailed for over {cadence['interval_days']} days, nothing planned: "
            f"{cadence['count']}"
            + (f" ({names}" + (f" and {more} more" if more > 0 else "") + ")" if names else "")
        )

"""`dripper customers predict` and `customers top --predicted` (DESIGN 17): fit the
lifetime models now and say what they found (or why nothing was fitted); list the
customers with the highest predicted 365-day value."""

from __future__ import annotations

import json

import click

from dripper.cli.common import app, config_option


@click.command("predict")
@click.option("--json", "as_json", is_flag=True, help="The fit as JSON (DESIGN 17).")
@config_option
def predict(as_json: bool) -> None:
    """Fit BG/NBD and Gamma-Gamma to every purchase so far and store each customer's
    p_alive, expected purchases (90 and 365 days) and predicted 365-day value."""
    from dripper.services.predict import predict as fit

    ctx = app()
    found = fit(ctx.store(), ctx.config, now=ctx.now())
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2))
        return
    if not found.fitted:
        click.echo(f"not fitted: {found.reason}")
        return
    model = found.purchase_model
    assert model is not None
    click.echo(
        f"fitted on {found.customers:,} buyer(s), {found.repeat_buyers:,} of them repeat "
        f"buyers: BG/NBD r={model.r:.4g} alpha={model.alpha:.4g} days a={model.a:.4g} "
        f"b={model.b:.4g}"
    )
    if found.spend_model is not None:
        spend = found.spend_model
        click.echo(
            f"Gamma-Gamma p={spend.p:.4g} q={spend.q:.4g} gamma={spend.gamma:.4g}: "
            f"{spend.mean:,.2f} {ctx.config.currency} per order on average"
        )
    if found.reason:
        click.echo(f"note: {found.reason}")
    click.echo(
        "stored per customer: p_alive, expected_purchases_90d, expected_purchases_365d, "
        "predicted_clv_365d (customers show, customers top --predicted, customer.<name>)"
    )


def top_predicted(limit: int, as_json: bool) -> None:
    """`customers top --predicted`: by predicted 365-day value."""
    from dripper.store import predict as stored

    ctx = app()
    with ctx.store().reading() as conn:
        listed, count = stored.top_predicted(conn, limit=limit)
        last = stored.latest_fit(conn)
    currency = ctx.config.currency
    if as_json:
        click.echo(
            json.dumps(
                {
                    "by": "predicted_clv_365d",
                    "customers": count,
                    "currency": currency,
                    "fitted_at": last["fitted_at"].isoformat() if last else None,
                    "fitted": bool(last and last["fitted"]),
                    "reason": (last["reason"] or None) if last else "never fitted",
                    "listed": [
                        {
                            "email": p.email,
                            "first_name": p.first_name,
                            "purchases": p.purchases,
                            "total_spent": round(p.spent_cents / 100, 2),
                            "p_alive": p.p_alive,
                            "expected_purchases_365d": p.expected_purchases_365d,
                            "predicted_clv_365d": p.predicted_clv_365d,
                        }
                        for p in listed
                    ],
                },
                indent=2,
            )
        )
        return
    if not listed:
        why = "never fitted: run `dripper customers predict`"
        if last is not None:
            why = last["reason"] or "no customer has a predicted value"
        click.echo(f"No predicted values: {why}")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("email", "name", "purchases", "spent", "p_alive", "next 365d", "value 365d"):
        table.add_column(column, justify="left" if column in ("email", "name") else "right")
    for p in listed:
        table.add_row(
            escape(p.email),
            escape(p.first_name or ""),
            f"{p.purchases:,}",
            f"{p.spent_cents / 100:,.2f}",
            "-" if p.p_alive is None else f"{p.p_alive:.2f}",
            "-" if p.expected_purchases_365d is None else f"{p.expected_purchases_365d:.2f}",
            f"{p.predicted_clv_365d:,.2f}",
        )
    console = Console(highlight=False)
    console.print(table)
    console.print(
        f"{count:,} customer(s) with a predicted value ({currency}, the next 365 days; "
        f"fitted {last['fitted_at']:%Y-%m-%d %H:%M} UTC)"
        if last
        else ""
    )

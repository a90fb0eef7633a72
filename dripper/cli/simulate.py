"""`dripper simulate`: what would be sent, and when. Sends nothing, changes nothing."""

from __future__ import annotations

import json

import click

from dripper.cli.common import app, config_option, is_terminal


@click.command()
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@click.option("--customer", "only", metavar="EMAIL", help="Show only this customer's emails.")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@config_option
def simulate(days: int, only: str | None, as_json: bool) -> None:
    """The timeline of what would be sent and when, from the real planner on a throwaway
    copy of the database. Nothing is sent and nothing changes."""
    import asyncio

    from dripper.cli.run import load_valid_campaigns
    from dripper.customers.addresses import normalize_email
    from dripper.errors import InputError
    from dripper.simulate import simulate as run_simulation

    ctx = app()
    address = None
    if only is not None:
        try:
            address = normalize_email(only)
        except ValueError as exc:
            raise InputError(f"--customer: {exc}") from None
    campaigns = load_valid_campaigns(ctx)
    warnings: list[str] = []
    sends = asyncio.run(
        run_simulation(
            ctx.config, ctx.store(), campaigns, now=ctx.now(), days=days, warnings=warnings
        )
    )
    if address is not None:
        sends = [s for s in sends if s.to == address]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "from": ctx.now().isoformat(),
                    "days": days,
                    "sends": [
                        {
                            "at": s.at.isoformat(),
                            "to": s.to,
                            "campaign": s.campaign,
                            "step": s.step,
                            "subject": s.subject,
                        }
                        for s in sends
                    ],
                    "warnings": sorted(set(warnings)),
                },
                indent=2,
            )
        )
        return
    for warning in sorted(set(warnings)):
        click.echo(f"warning: {warning}", err=True)
    if not sends:
        click.echo(f"nothing would be sent in the next {days} day(s)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("when (UTC)", "to", "campaign / step", "subject"):
        table.add_column(column)
    for s in sends:
        table.add_row(f"{s.at:%Y-%m-%d %H:%M}", s.to, f"{s.campaign} / {s.step}", s.subject)
    # In a pipe rich assumes 80 columns; a timeline reads better unwrapped.
    Console(highlight=False, width=None if is_terminal() else 200).print(table)
    click.echo(f"{len(sends)} email(s) in the next {days} day(s); nothing was sent or changed")

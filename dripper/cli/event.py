"""`dripper event TYPE EMAIL`: record what a customer did."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option
from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.cli.common import AppContext
    from dripper.services.planning import Planner

_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@click.command()
@click.argument("event_type", metavar="TYPE")
@click.argument("email")
@click.option("--data", "data_text", metavar="JSON", help="Event data, e.g. '{\"amount\": 24.5}'.")
@click.option("--at", "at_text", metavar="TIME", help="When it happened (ISO 8601; default: now).")
@click.option(
    "--id",
    "event_id",
    metavar="ID",
    help="The event's own id (an order number): the same type and id are recorded once.",
)
@config_option
def event(
    event_type: str, email: str, data_text: str | None, at_text: str | None, event_id: str | None
) -> None:
    """Record an event (purchase, refund, signup, ...) for a customer, creating them if new.

    A `purchase` with an `amount` (and optional `currency`) updates purchases and
    total_spent; a `refund` with an `amount` (and optional `order`, the purchase's id)
    lowers total_spent. With --id, recording the same type and id again changes nothing.
    """
    from dripper.customers.addresses import normalize_email
    from dripper.eventdata import parse_event_data
    from dripper.timeparse import parse_instant

    ctx = app()
    if not _TYPE.match(event_type):
        raise InputError(
            f"bad event type {event_type!r} (lower-case letters, digits, '_', '-', '.')"
        )
    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    data = parse_event_data(data_text)
    try:
        at = parse_instant(at_text) if at_text else ctx.now()
    except ValueError as exc:
        raise InputError(f"--at: {exc}") from None
    planner = planner_for(ctx)
    planner.check(at, data, type_=event_type, ext_id=event_id)
    recorded = planner.record_event(
        address, event_type, at=at, data=data, now=ctx.now(), ext_id=event_id
    )
    if recorded is None:
        click.echo(f"duplicate: {event_type} {event_id} was recorded before; nothing changed")
        return
    customer, decisions = recorded.customer, recorded.decisions
    for warning in decisions.warnings:
        click.echo(f"warning: {warning}", err=True)
    summary = ""
    if event_type in ("purchase", "refund"):
        currency = planner.config.currency
        summary = (
            f" (purchases: {customer.purchases}, total spent: "
            f"{customer.total_spent:.2f} {currency})"
        )
    click.echo(f"recorded {event_type} for {customer.email} at {at.isoformat()}{summary}")
    for ending in decisions.end:
        click.echo(f"  {ending.status.value}: enrollment {ending.enrollment_id} ({ending.reason})")
    for new in decisions.enroll:
        click.echo(f"  enrolled in {new.campaign}: {len(new.sends)} step(s) planned")


def planner_for(ctx: AppContext) -> Planner:
    """The planner. A campaign that does not load is left out with a
    warning: the event itself must never be lost to a typo in a campaign file."""
    from pathlib import Path

    from dripper.campaigns import load_campaigns
    from dripper.services.planning import Planner

    config = ctx.config
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    broken = sorted({p.file for p in problems})
    if broken:
        click.echo(
            f"warning: not planning for {', '.join(broken)} ({len(problems)} problem(s); "
            "run `dripper check`)",
            err=True,
        )
    return Planner(config, ctx.store(), campaigns)

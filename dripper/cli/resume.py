"""`dripper campaigns`, `dripper pause CAMPAIGN` and `dripper resume CAMPAIGN` (DESIGN 14):
each campaign's kind, topic, state, waiting sends and last send; a campaign's sends held
(they wait: nothing is cancelled or lost) and released. `resume` also releases a campaign
the daemon paused after repeated policy rejections (5.7.x), once the cause is fixed."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from dripper.campaigns import Campaign


def _loaded() -> list[Campaign]:
    from pathlib import Path

    from dripper.campaigns import load_campaigns

    config = app().config
    campaigns, _problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    return campaigns


def _kind(campaign: Campaign) -> str:
    from dripper.campaigns import DateTrigger, EventTrigger, WhenTrigger

    trigger, schedule = campaign.trigger, campaign.schedule
    if schedule is not None:
        return f"once {schedule.starting}" if schedule.every is None else f"every {schedule.every}"
    if isinstance(trigger, EventTrigger):
        return f"event {trigger.event}"
    if isinstance(trigger, DateTrigger):
        return "date" + (" (annually)" if trigger.annually else "")
    if isinstance(trigger, WhenTrigger):
        return "when" + (" (repeat)" if trigger.repeat else "")
    return "?"


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = (
        f" (did you mean {close[0]!r}?)" if close else f" (campaigns: {', '.join(known) or 'none'})"
    )
    return f"no campaign named {name!r}{hint}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per campaign, in a list.")
@config_option
def campaigns(as_json: bool) -> None:
    """List each campaign: kind, topic, state (active, paused, policy-paused, no file),
    sends waiting and the last send."""
    from dripper.store import campaign_state

    loaded = {c.name: c for c in _loaded()}
    with app().store().reading() as conn:
        paused = campaign_state.paused_campaigns(conn)
        sends = campaign_state.overview(conn)
    rows: list[dict[str, Any]] = []
    for name in sorted(set(loaded) | set(sends) | set(paused)):
        campaign = loaded.get(name)
        pending, last = sends.get(name, (0, None))
        if name in paused:
            state = campaign_state.state_of(paused[name])
        else:
            state = "active" if campaign is not None else "no file"
        rows.append(
            {
                "campaign": name,
                "kind": _kind(campaign) if campaign is not None else "",
                "topic": campaign.topic if campaign is not None else None,
                "state": state,
                "reason": paused.get(name),
                "pending": pending,
                "last_sent": last.isoformat() if last else None,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("campaign", "kind", "topic", "state", "waiting", "last sent"):
        table.add_column(column, justify="right" if column == "waiting" else "left")
    for row in rows:
        table.add_row(
            row["campaign"],
            row["kind"],
            row["topic"] or "",
            row["state"],
            f"{row['pending']:,}",
            (row["last_sent"] or "")[:16].replace("T", " "),
        )
    Console(highlight=False, markup=False).print(table)


@click.command()
@click.argument("campaign")
@config_option
def pause(campaign: str) -> None:
    """Hold CAMPAIGN's sends: they wait (nothing is cancelled or lost) until `resume`."""
    from dripper.errors import InputError
    from dripper.store import campaign_state

    names = sorted(c.name for c in _loaded())
    if campaign not in names:
        raise InputError(_unknown(campaign, names))
    with app().store().transaction() as conn:
        already = campaign_state.paused_campaigns(conn).get(campaign)
        if already is not None and already != campaign_state.NO_FILE:
            click.echo(f"{campaign} is already paused ({already})")
            return
        campaign_state.pause_campaign(conn, campaign, campaign_state.BY_HAND)
    click.echo(f"paused {campaign}: its sends wait; `dripper resume {campaign}` releases them")


@click.command()
@click.argument("campaign")
@config_option
def resume(campaign: str) -> None:
    """Release CAMPAIGN's sends: paused with `dripper pause`, or by the daemon after
    repeated 5.7.x policy rejections (once the cause is fixed)."""
    from dripper.errors import InputError
    from dripper.store import campaign_state

    store = app().store()
    with store.transaction() as conn:
        paused = campaign_state.paused_campaigns(conn)
        if campaign not in paused:
            listed = ", ".join(sorted(paused)) or "none"
            names = sorted(c.name for c in _loaded())
            if campaign not in names:
                raise InputError(f"{_unknown(campaign, names)}; paused: {listed}")
            raise InputError(f"campaign {campaign!r} is not paused (paused: {listed})")
        campaign_state.resume_campaign(conn, campaign)
    click.echo(f"resumed {campaign} (was: {paused[campaign]})")

"""`dripper resume CAMPAIGN`: send again for a campaign the daemon paused after repeated
policy rejections (5.7.x), once the cause is fixed."""

from __future__ import annotations

import click

from dripper.cli.common import app, config_option


@click.command()
@click.argument("campaign")
@config_option
def resume(campaign: str) -> None:
    """Resume CAMPAIGN after the daemon paused it (repeated 5.7.x policy rejections)."""
    from dripper.errors import InputError
    from dripper.store import planning

    store = app().store()
    with store.transaction() as conn:
        paused = planning.paused_campaigns(conn)
        if campaign not in paused:
            listed = ", ".join(sorted(paused)) or "none"
            raise InputError(f"campaign {campaign!r} is not paused (paused: {listed})")
        planning.resume_campaign(conn, campaign)
    click.echo(f"resumed {campaign} (was: {paused[campaign]})")

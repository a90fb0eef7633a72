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
    from pathlib import Path

    from dripper.campaigns import load_campaigns
    from dripper.errors import InputError
    from dripper.store import campaign_state

    ctx = app()
    store = ctx.store()
    with store.transaction() as conn:
        paused = campaign_state.paused_campaigns(conn)
        if campaign not in paused:
            listed = ", ".join(sorted(paused)) or "none"
            config = ctx.config
            loaded, _problems = load_campaigns(
                config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
            )
            names = sorted(c.name for c in loaded)
            if campaign not in names:
                known = ", ".join(names) or "none"
                raise InputError(
                    f"no campaign named {campaign!r} (campaigns: {known}; paused: {listed})"
                )
            raise InputError(f"campaign {campaign!r} is not paused (paused: {listed})")
        campaign_state.resume_campaign(conn, campaign)
    click.echo(f"resumed {campaign} (was: {paused[campaign]})")

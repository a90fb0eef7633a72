"""`dripper run`: the daemon. Plans and sends what is due, once or on every tick."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.cli.common import AppContext
    from dripper.runner import Report, Runner
    from dripper.transport.base import Transport


def load_valid_campaigns(ctx: AppContext) -> list[Campaign]:
    """Every campaign, or CampaignError (exit 1) listing each problem: a daemon never runs
    half a project."""
    from pathlib import Path

    from dripper.campaigns import load_campaigns
    from dripper.errors import CampaignError

    config = ctx.config
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    if problems:
        raise CampaignError(problems)
    return campaigns


def make_transport(ctx: AppContext) -> Transport:
    from dripper.errors import ConfigError
    from dripper.transport.file import FileTransport

    settings = ctx.config.transport
    if settings["kind"] == "file":
        return FileTransport(settings["path"])
    raise ConfigError(f"[transport] kind = {settings['kind']!r} is not available yet")


def make_runner(ctx: AppContext, transport: Transport | None = None) -> Runner:
    from dripper.render.renderer import Renderer
    from dripper.runner import Runner

    campaigns = load_valid_campaigns(ctx)
    return Runner(
        ctx.config,
        ctx.store(),
        campaigns,
        renderer=Renderer(ctx.config),
        transport=transport or make_transport(ctx),
    )


def print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "enrolled": report.enrolled,
                    "sent": report.sent,
                    "deferred": report.deferred,
                    "skipped": report.skipped,
                    "cancelled": report.cancelled,
                    "failed": report.failed,
                    "ambiguous": report.ambiguous,
                    "warnings": report.warnings,
                    "deliveries": [
                        {"at": at.isoformat(), "to": to, "campaign": c, "step": s, "message_id": m}
                        for at, to, c, s, m in report.deliveries
                    ],
                }
            )
        )
        return
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for _at, to, campaign, step, _mid in report.deliveries:
        click.echo(f"  sent {campaign}/{step} to {to}")
    click.echo(report.summary())


@click.command()
@click.option("--once", is_flag=True, help="One pass: plan, send what is due, exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the report as JSON.")
@config_option
def run(once: bool, as_json: bool) -> None:
    """Run the daemon: enroll customers, send what is due, repeat every tick.

    Stop it with Ctrl-C or SIGTERM: it finishes the sends in flight and exits 0.
    """
    import asyncio

    ctx = app()
    runner = make_runner(ctx)
    if once:
        report = asyncio.run(_once(runner, ctx))
        print_report(report, as_json=as_json)
        if report.failed:
            click.get_current_context().exit(1)
        return
    asyncio.run(_forever(runner, ctx))


async def _once(runner: Runner, ctx: AppContext) -> Report:
    try:
        return await runner.run_once(ctx.now())
    finally:
        assert runner.transport is not None
        await runner.transport.close()


async def _forever(runner: Runner, ctx: AppContext) -> None:
    import asyncio
    import contextlib
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tick = ctx.config.tick_seconds
    click.echo(f"dripper run: every {tick}s; Ctrl-C to stop", err=True)
    try:
        while not stop.is_set():
            # A pass is never interrupted: a stop request is honoured between passes, so
            # every send in flight is finished and recorded.
            report = await runner.run_once(ctx.now())
            if report.enrolled or report.sent or report.failed or report.deferred:
                click.echo(f"{ctx.now():%Y-%m-%d %H:%M:%S} {report.summary()}", err=True)
            with contextlib.suppress(TimeoutError):  # the tick passed without a stop
                await asyncio.wait_for(stop.wait(), timeout=tick)
    finally:
        assert runner.transport is not None
        await runner.transport.close()
    click.echo("dripper run: stopped", err=True)

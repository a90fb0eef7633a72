"""`dripper run`: the daemon. Plans and sends what is due, once or on every tick."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option
from dripper.errors import InputError

log = logging.getLogger("dripper.run")

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.cli.common import AppContext
    from dripper.cli.watch import DaemonMetrics
    from dripper.dkim import DkimSigner
    from dripper.live import Version
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
    settings = ctx.config.transport
    if settings.kind == "smtp":
        from dripper.transport.smtp import SmtpTransport

        return SmtpTransport.from_config(ctx.config)
    from dripper.transport.file import FileTransport

    return FileTransport(settings.path)


def make_signer(ctx: AppContext) -> DkimSigner | None:
    """The DKIM signer of `[dkim]`, or None when it is not configured."""
    from dripper.errors import ConfigError

    dkim = ctx.config.dkim
    if not dkim.domain:
        return None
    if not dkim.selector or not dkim.private_key:
        raise ConfigError("[dkim] domain is set: set selector and private_key too")
    from dripper.dkim import DkimSigner

    return DkimSigner.from_file(dkim.domain, dkim.selector, dkim.private_key)


def load_version(ctx: AppContext) -> Version:
    """The project as one version (campaigns, every template compiled), or CampaignError
    (exit 1) listing each problem: a daemon never runs half a project."""
    from dripper.errors import CampaignError, Problem
    from dripper.live import MOVING
    from dripper.live import load_version as load

    loaded = load(ctx.config)
    while loaded == [MOVING]:
        loaded = load(ctx.config)  # being written as we start: read it again
    if isinstance(loaded, list):
        campaigns = load_valid_campaigns(ctx)  # the campaign problems, with file and line
        from dripper.campaigns.personal import personal_problems

        config = ctx.config  # ... and an assignee or a webhook host config.toml lacks
        if found := personal_problems(campaigns, config.tasks, config.webhooks):
            raise CampaignError(found)
        where = str(ctx.config.templates_dir)
        raise CampaignError([Problem(where, None, "template", text) for text in loaded])
    return loaded


def make_runner(
    ctx: AppContext, transport: Transport | None = None, version: Version | None = None
) -> Runner:
    from dripper.runner import Runner
    from dripper.services.delivery import Sender

    version = version or load_version(ctx)
    campaigns = list(version.campaigns)
    store = ctx.store()
    rate = float(ctx.config.transport.rate_per_second or 0)
    limiter = None
    if rate > 0 and ctx.config.transport.kind == "smtp":
        from dripper.ratelimit import RateLimiter

        limiter = RateLimiter(store, rate)
    sender = Sender(
        ctx.config,
        store,
        campaigns,
        renderer=version.renderer,
        transport=transport or make_transport(ctx),
        signer=make_signer(ctx),
        limiter=limiter,
    )
    return Runner(ctx.config, store, campaigns, sender=sender)


def print_report(report: Report, *, as_json: bool, dry_run: bool = False) -> None:
    if as_json:
        counts = {"would_send": report.sent, "sent": 0} if dry_run else {"sent": report.sent}
        click.echo(
            json.dumps(
                {
                    "dry_run": dry_run,
                    "enrolled": report.enrolled,
                    **counts,
                    "deferred": report.deferred,
                    "skipped": report.skipped,
                    "cancelled": report.cancelled,
                    "failed": report.failed,
                    "ambiguous": report.ambiguous,
                    "inbound": report.inbound,
                    "forwarded": report.forwarded,
                    "confirmations": report.confirmations,
                    "tasks": report.tasks,
                    "webhooks": report.webhooks,
                    "digests": report.digests,
                    "mailbox": report.mailbox,
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
    verb = "would send" if dry_run else "sent"
    for _at, to, campaign, step, _mid in report.deliveries:
        click.echo(f"  {verb} {campaign}/{step} to {to}")
    click.echo(report.summary(dry_run=dry_run))


@click.command()
@click.option("--once", is_flag=True, help="One pass: plan, send what is due, exit.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Render what is due now (signed, as it would go out) without sending or recording.",
)
@click.option("--json", "as_json", is_flag=True, help="With --once/--dry-run: JSON report.")
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve /metrics (Prometheus) and /healthz there ([sending] metrics).",
)
@config_option
def run(once: bool, dry_run: bool, as_json: bool, metrics: str | None) -> None:
    """Run the daemon: enroll customers, send what is due, repeat every tick.

    Stop it with Ctrl-C or SIGTERM: it finishes the sends in flight, records them and
    exits 0. On SQLite one daemon runs per database file; on PostgreSQL any number
    share the work.
    """
    import asyncio
    import contextlib

    ctx = app()
    if dry_run:
        from dripper.transport.memory import MemoryTransport

        dry = make_runner(ctx, transport=MemoryTransport())
        report = asyncio.run(dry.sender.dry_run(ctx.now()))
        print_report(report, as_json=as_json, dry_run=True)
        return
    address = metrics or str(ctx.config.sending_metrics or "")
    watch = None
    runner: Runner | None = None  # read by /healthz's progress once the daemon has one
    if address and not once:
        from dripper.cli.watch import DaemonMetrics, parse_address

        host, port = parse_address(address)
        watch = DaemonMetrics(
            ctx.config.tick_seconds,
            ping=lambda: _ping(ctx),
            progress=lambda: runner.sender.progress.sent if runner is not None else 0,
        )
        watch.serve(host, port)  # before anything else: a port in use stops here, exit 2
    elif metrics and once:
        raise InputError("--metrics watches the daemon: leave out --once")
    runner = make_runner(ctx) if once else _wait_for_database(ctx)
    assert runner is not None
    with contextlib.ExitStack() as stack:
        if watch is not None:
            stack.callback(watch.close)
        database = runner.store.database_file
        if database is not None:  # SQLite: one daemon at a time
            from dripper.daemonlock import DaemonLock

            stack.enter_context(DaemonLock(database))
        if once:
            report = asyncio.run(_once(runner, ctx))
            print_report(report, as_json=as_json)
            if report.failed:
                click.get_current_context().exit(1)
            return
        asyncio.run(_forever(runner, ctx, watch))


async def _once(runner: Runner, ctx: AppContext) -> Report:
    try:
        return await runner.run_once(ctx.now())
    finally:
        await runner.sender.close()


def _ping(ctx: AppContext) -> None:
    ctx.store().ping()


async def _forever(runner: Runner, ctx: AppContext, watch: DaemonMetrics | None = None) -> None:
    import asyncio
    import contextlib
    import signal

    from dripper.cli.status import StatusLine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from dripper.live import Version, Watcher, fingerprint
    from dripper.store.outage import Backoff, describe, is_outage

    config = ctx.config
    tick = config.tick_seconds
    files = fingerprint(config.campaigns_dir, config.templates_dir)
    watcher = Watcher(config, Version(tuple(runner.campaigns), runner.sender.renderer, files))
    status = StatusLine(runner, ctx)  # sets up logging: a status line or JSON lines
    log.info("started", extra={"tick_seconds": tick, "owner": runner.sender.owner})
    backoff = Backoff()
    try:
        async with status:
            while not stop.is_set():
                # A stop request is honoured between batches: every send in flight is
                # finished and recorded before the daemon exits.
                began = time.monotonic()
                try:
                    # Edited files between passes: one version, switched to at once.
                    version = await asyncio.to_thread(watcher.changed)
                    if version is not None:
                        runner.use(version.campaigns, version.renderer)
                    report = await runner.run_once(ctx.now(), stop=stop)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    # An outage is a log line and a wait, never the end (issue 23): what
                    # the pass left in memory is settled when the database answers.
                    wait = backoff.next()
                    log.warning("database unreachable, retrying in %d s: %s", wait, describe(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=wait)
                    continue
                if backoff.reset():
                    log.warning("database reachable again")
                status.passed(report)
                if watch is not None:
                    watch.passed(
                        report,
                        time.monotonic() - began,
                        await asyncio.to_thread(_counts, runner, ctx),
                        mailbox=bool(ctx.config.replies.imap_host),
                    )
                with contextlib.suppress(TimeoutError):  # the tick passed without a stop
                    await asyncio.wait_for(stop.wait(), timeout=tick)
            await _settle_before_exit(runner, ctx)
    finally:
        await runner.sender.close()
    log.info("stopped", extra={"sent": runner.sender.progress.sent})


def _counts(runner: Runner, ctx: AppContext) -> dict[str, int]:
    """The backlog for /metrics (never a reason for the daemon to stop)."""
    from dripper.store import deliveries

    try:
        with runner.store.reading() as conn:
            return deliveries.status_counts(conn, now=ctx.now())
    except Exception:
        return {}


SETTLE_ON_EXIT = 30.0  # seconds a stopping daemon keeps trying to record what it sent


async def _settle_before_exit(runner: Runner, ctx: AppContext) -> None:
    """A daemon told to stop during an outage still holds outcomes of sends that went
    out: it tries to record them for a while (else they would be ambiguous after it)."""
    import asyncio

    from dripper.store.outage import describe, is_outage

    sender = runner.sender
    deadline = asyncio.get_running_loop().time() + SETTLE_ON_EXIT
    while sender.parked:
        try:
            sender.settle(ctx.now())
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            if asyncio.get_running_loop().time() > deadline:
                log.error(
                    "stopping with %d sent email(s) unrecorded (the database is still "
                    "unreachable): they will be recorded as possibly delivered",
                    len(sender.parked.results),
                )
                return
            log.warning("database unreachable while stopping: %s", describe(exc))
            await asyncio.sleep(2)


def _wait_for_database(ctx: AppContext) -> Runner:
    """The daemon's runner, once the database answers: a start while it is down waits
    and retries (a log line each time, waits growing to a minute) instead of exiting, so
    a service manager never gives up on it. SIGTERM or Ctrl-C ends the wait (exit 0)."""
    import signal
    import time

    from dripper.cli.status import setup_logging
    from dripper.store.outage import Backoff, describe, is_outage

    backoff = Backoff()
    stopping: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        while True:
            try:
                runner = make_runner(ctx)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if backoff.failures == 0:  # the status line's logging is not up yet
                    setup_logging(None)
                wait = backoff.next()
                log.warning(
                    "database unreachable at start, retrying in %d s: %s", wait, describe(exc)
                )
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and not stopping:
                    time.sleep(0.2)
                if stopping:
                    raise SystemExit(0) from None
                continue
            if backoff.reset():
                log.warning("database reachable: starting")
            return runner
    finally:
        signal.signal(signal.SIGTERM, previous)

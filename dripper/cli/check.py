"""`dripper check`: load every campaign and template, render every step (each subject
variant, each edition) for the sample customers, and list every problem found."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Edition
    from dripper.cli.check_lint import LintWarning
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.errors import Problem
    from dripper.render.model import RenderedEmail


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print problems and warnings as JSON.")
@click.option("--strict", is_flag=True, help="Warnings are problems too (exit 1).")
@click.option(
    "--no-spamassassin", "no_spamassassin", is_flag=True, help="Skip SpamAssassin's rules."
)
@config_option
def check(as_json: bool, strict: bool, no_spamassassin: bool) -> None:
    """Load and render everything; lint every email; print one line per problem (exit 1
    if any) and per warning (exit 0, unless --strict)."""
    from dripper.campaigns import load_campaigns
    from dripper.engine import plan
    from dripper.errors import DripperError
    from dripper.errors import Problem as Found

    ctx = app()
    config = ctx.config
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    problems = list(problems)
    warnings: list[str] = []
    lints: list[LintWarning] = []
    for campaign in campaigns:  # a broadcast dated before today never goes out (DESIGN 14)
        schedule = campaign.schedule
        if schedule is not None and plan.broadcast_passed(schedule, schedule.starting, ctx.now()):
            warnings.append(
                f"{campaign.file}: schedule.once {schedule.starting} is in the past: it will "
                "never run (a broadcast is sent on its date, never late)"
            )
    dkim = (config.dkim.domain or "").lower().strip(".")
    for campaign in campaigns:  # a campaign's own From, and DKIM alignment (DESIGN 16)
        if campaign.sender and dkim:
            domain = campaign.sender.rsplit("@", 1)[-1].strip(" >").lower()
            if domain != dkim and not domain.endswith("." + dkim):
                warnings.append(
                    f"{campaign.file}:{campaign.sender_line}: from: {domain} is not the DKIM "
                    f"domain {dkim}: receivers see no aligned signature and DMARC fails; send "
                    f"from an address at {dkim}, or sign for {domain}"
                )
    for campaign in campaigns:  # a topic must be one [topics] names (DESIGN 13)
        if campaign.topic is not None and campaign.topic not in config.topics:
            known = ", ".join(config.topics) or "none yet"
            problems.append(
                Found(
                    campaign.file,
                    campaign.topic_line,
                    "topic",
                    f"no topic {campaign.topic!r} in [topics] of config.toml (known: {known}); "
                    f'add {campaign.topic} = "Its label" there',
                )
            )

    from dripper.cli import check_personal  # tasks and webhooks against config (DESIGN 16)

    problems += check_personal.config_problems(config, campaigns)
    warnings += check_personal.config_warnings(config, campaigns)

    samples = []
    if not config.samples_path.is_file():
        warnings.append(
            f"no sample customers at {config.samples_path} ([project] samples): "
            "rendering checked with one built-in sample"
        )
    try:
        from dripper.preview.samples import load_samples

        samples = load_samples(config.samples_path, now=ctx.now())
    except DripperError as exc:
        problems.append(Found(str(config.samples_path), None, "[project] samples", str(exc)))

    if campaigns and samples:
        from dripper.campaigns.samplecheck import check_on_samples

        findings = check_on_samples(
            campaigns, samples, now=ctx.now(), lines=_sample_lines(config.samples_path)
        )
        problems += findings.problems
        warnings += findings.warnings
        problems += _render_all(
            ctx.now(), config, campaigns, samples, warnings, lints, spam=not no_spamassassin
        )
        if not problems:
            warnings += _cadence(ctx.now(), config, campaigns)
    problems += _dkim(config, warnings)
    problems += _transport(config)
    problems += _relays(config)
    warnings += _tracking(config)

    errors = [w for w in lints if w.error]  # the text part lost its body: never a warning
    lints = [w for w in lints if not w.error]
    problems += [Found(w.file or "", w.line, w.rule, w.message) for w in errors]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "campaigns": [c.name for c in campaigns],
                    "problems": [
                        {"file": p.file, "line": p.line, "key": p.key, "message": p.message}
                        for p in problems
                    ],
                    "warnings": [w.as_json() for w in lints]
                    + [
                        {"file": None, "line": None, "campaign": None, "step": None,
                         "rule": _rule_of(w), "message": w}
                        for w in warnings
                    ],
                },
                indent=2,
            )
        )  # fmt: skip
    else:
        for problem in problems:
            click.echo(str(problem))
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for lint in lints:
            click.echo(f"warning: {lint}", err=True)
        steps = sum(len(c.steps) for c in campaigns)
        said = len(warnings) + len(lints)
        verdict = f"{len(problems)} problem(s)" if problems else "no problems"
        if said:
            verdict += f", {said} warning(s)" + (" (--strict: each is a problem)" if strict else "")
        click.echo(
            f"{len(campaigns)} campaign(s), {steps} step(s), {len(samples)} sample customer(s) "
            f"in {config.campaigns_dir}: {verdict}",
            err=bool(problems),
        )
    if problems or (strict and (warnings or lints)):
        click.get_current_context().exit(1)


def _rule_of(warning: str) -> str:
    """A warning's kind, from how it begins (`cadence:`, `over-mailing:`, a file)."""
    head = warning.split(":", 1)[0]
    return head if head.replace("-", "").isalpha() and len(head) < 20 else "project"


def _render_all(
    now: datetime,
    config: Config,
    campaigns: Sequence[Campaign],
    samples: Sequence[Customer],
    warnings: list[str] | None = None,
    lints: list[LintWarning] | None = None,
    *,
    spam: bool = True,
) -> list[Problem]:
    """Every step, variant and edition for each sample its trigger, audience and `if`
    could reach (a step no sample reaches is compiled, and said): template errors as
    file:line, naming the sample and the value it lacked."""
    from dripper.campaigns.samplecheck import reaches, sample_event
    from dripper.cli.check_lint import Linter
    from dripper.errors import DripperError
    from dripper.errors import Problem as Found
    from dripper.render.renderer import Renderer

    try:
        renderer = Renderer(config, preview=True)
    except DripperError as exc:
        return [Found(str(config.path or "config.toml"), None, None, str(exc))]
    found: list[Problem] = []
    linter = Linter(renderer)
    # SpamAssassin scores one email of each step and variant (the first sample's)
    scored: dict[tuple[str, str, int], RenderedEmail] = {}
    for campaign in campaigns:
        editions: list[Edition | None] = [*campaign.editions] or [None]
        event = sample_event(campaign, now)
        if event is None and (reading := renderer.reads_event(campaign)):
            found += [p for p in reading if p not in found]
            continue  # rendered, each would fail for the same reason
        for step in campaign.steps:
            reached = [c for c in samples if reaches(campaign, step, c, now=now)]
            if step.personal:  # a task or a webhook: its text, no email (DESIGN 16)
                from dripper.cli.check_personal import render_problems

                shown = reached or samples[:1]
                found += render_problems(renderer, campaign, step, shown, now=now, event=event)
                continue
            if not reached:
                try:
                    renderer.template(step.template)  # its syntax, at least
                except DripperError as exc:
                    found.append(Found(campaign.file, step.line, f"steps.{step.id}", str(exc)))
                if warnings is not None:
                    warnings.append(
                        f"{campaign.file}: step {step.id}: no sample customer would get it, so "
                        "it was not rendered: add one who would to the sample sheet"
                    )
                continue
            hit: dict[Problem, list[str]] = {}  # each problem, and the samples it hit
            for edition in editions:
                for customer in reached:
                    rendered: list[RenderedEmail] = []
                    for problem in renderer.check(
                        campaign,
                        step,
                        customer,
                        now=now,
                        edition=edition,
                        event=event,
                        rendered=rendered,
                    ):
                        hit.setdefault(problem, []).append(customer.email)
                    # An edition's text is the same for every sample: the first lints it.
                    lint_this = edition is editions[0] or customer is reached[0]
                    for variant, email in enumerate(rendered if lint_this else ()):
                        linter.email(campaign.name, step.id, step.template, email)
                        if spam and (campaign.name, step.id, variant) not in scored:
                            scored[(campaign.name, step.id, variant)] = email
            for problem, emails in hit.items():
                named = _for_sample(problem, emails, len(reached))
                if named not in found:
                    found.append(named)
    if lints is not None:
        lints += linter.warnings
        if scored:
            lints += _spam_scores(scored)
    return found


def _spam_scores(scored: dict[tuple[str, str, int], RenderedEmail]) -> list[LintWarning]:
    """Each SpamAssassin rule that fires with local tests and scores, per email; nothing
    when SpamAssassin is not installed."""
    from dripper.cli.check_lint import LintWarning, spamassassin

    items = list(scored.items())
    reports = spamassassin([email.mime for _, email in items]) or []
    found: list[LintWarning] = []
    for ((campaign, step, _variant), email), fired in zip(items, reports, strict=False):
        for rule, score in fired:
            if score != 0:
                found.append(
                    LintWarning(
                        None,
                        None,
                        campaign,
                        step,
                        "spamassassin",
                        f"{rule} ({score:+.1f}) on {email.subject!r}: the docs' deliverability "
                        "page says what it means and how to fix it",
                    )
                )
    return found


def _for_sample(problem: Problem, emails: list[str], reached: int) -> Problem:
    """The problem with the samples it happened for, and what to do about a missing value;
    as it is when it is the template's own (every sample hit, no value missing)."""
    from dataclasses import replace

    missing = "is undefined" in problem.message
    if not missing and len(set(emails)) >= reached:
        return problem
    others = len(set(emails)) - 1
    message = f"{problem.message} (for sample customer {emails[0]}" + (
        f" and {others} other(s)" if others else ""
    )
    if "is undefined" in problem.message:
        name = problem.message.split(" is undefined", 1)[0].split()[-1].strip("'`")
        message += (
            f": no value for {name} in the sample sheet; give it one there, or write "
            f"{{{{ {name}|default('') }}}} in the template"
        )
    return replace(problem, message=message + ")")


CADENCE_DAYS = 365  # how far ahead `check` simulates the campaigns for silences
CADENCE_SHOWN = 3  # customers named in the warning before the rest are counted


def _cadence(now: datetime, config: Config, campaigns: Sequence[Campaign]) -> list[str]:
    """Simulate the next year for the sample customers, each as if they bought today, and
    warn about every silence longer than `[project] cadence`. The simulation runs in
    memory (engine/simulation.py): the daemon's decisions, no database, under a second."""
    from decimal import Decimal

    from dripper.customers.csvio import read_customers_csv
    from dripper.customers.model import CustomerData
    from dripper.engine.cadence import longest_silences, over_mailing
    from dripper.engine.simulation import Simulation
    from dripper.timeparse import format_duration

    rows: list[CustomerData] = [CustomerData("sam@example.com", first_name="Sam")]
    if config.samples_path.is_file():
        rows = list(read_customers_csv(config.samples_path).rows) or rows
    simulation = Simulation(config, campaigns)
    simulation.add_customers(rows, now=now)
    for row in rows:  # each sample as a first-time buyer of 24.50 (as previews show them)
        simulation.purchase(row.email, at=now, amount=Decimal("24.50"), now=now)
    sends = simulation.timeline(now, CADENCE_DAYS)
    simulated = simulation.warnings
    times: dict[str, list[datetime]] = {row.email: [] for row in rows}
    marketing: dict[str, list[tuple[datetime, str]]] = {}
    exempt = {
        (c.name, s.id) for c in campaigns for s in c.steps if c.transactional or s.transactional
    }
    for send in sends:
        times.setdefault(send.to, []).append(send.at)
        if (send.campaign, send.step) not in exempt:
            marketing.setdefault(send.to, []).append((send.at, send.campaign))
    found = [
        f"over-mailing: in the simulated year {c.email} would get {c.count} marketing emails "
        f"in the 7 days from {c.start:%Y-%m-%d} (more than [project] max_per_week = "
        f"{config.max_per_week}), from {', '.join(c.campaigns)}: space the steps out, or "
        "give one campaign an audience that leaves the others' customers out"
        for c in over_mailing(marketing, limit=config.max_per_week)[:CADENCE_SHOWN]
    ]
    cadence = config.cadence
    silences = longest_silences(
        times, start=now, end=now + timedelta(days=CADENCE_DAYS), longer_than=cadence
    )
    if not silences:
        return found
    named = "; ".join(
        f"{s.email} from {s.start:%Y-%m-%d} to {s.end:%Y-%m-%d} ({s.length.days} days)"
        for s in silences[:CADENCE_SHOWN]
    )
    more = len(silences) - CADENCE_SHOWN
    found += [
        f"cadence: simulating the next year for the sample customers (each buying today), "
        f"{len(silences)} of {len(times)} would hear nothing for longer than "
        f"{format_duration(cadence)} ([project] cadence): {named}"
        + (f"; and {more} more" if more > 0 else "")
        + ". Add a step, a recurring campaign or newsletter editions to fill the gap"
    ]
    said = sorted(set(simulated))  # e.g. a newsletter out of editions: the likely cause
    if said:
        others = f" (and {len(said) - 1} more like it)" if len(said) > 1 else ""
        found.append(f"cadence: in the simulated year: {said[0]}{others}")
    return found


def _dkim(config: Config, warnings: list[str]) -> list[Problem]:
    """SMTP without DKIM is a warning (mail goes out, but lands in spam); a DKIM key that
    does not load is a problem."""
    from dripper.errors import ConfigError
    from dripper.errors import Problem as Found

    dkim = config.dkim
    if not dkim.domain:
        if config.transport.kind == "smtp":
            warnings.append(
                "DKIM is not configured: emails sent over SMTP go out unsigned and are likely "
                "to land in spam; set [dkim] domain, selector and private_key"
            )
        return []
    where = str(config.path or "config.toml")
    if not dkim.selector or not dkim.private_key:
        return [Found(where, None, "[dkim]", "domain is set: set selector and private_key too")]
    from dripper.dkim import DkimSigner

    try:
        DkimSigner.from_file(dkim.domain, dkim.selector, Path(dkim.private_key))
    except ConfigError as exc:
        return [Found(where, None, "[dkim] private_key", str(exc))]
    return []


def _sample_lines(path: Path) -> dict[str, int]:
    """Where each sample customer's row is in the sample sheet (the first, if repeated)."""
    from dripper.customers.csvio import SheetReader, SheetRow

    lines: dict[str, int] = {}
    try:
        with path.open("rb") as raw:
            for item in SheetReader(raw):
                if isinstance(item, SheetRow):
                    lines.setdefault(item.data.email, item.line)
    except (OSError, ValueError):
        return {}  # an unreadable sheet is reported by load_samples
    return lines


def _tracking(config: Config) -> list[str]:
    """Mail that really goes out must link to a `dripper serve` customers can reach, over
    https: Gmail and Yahoo honour one-click unsubscribe (RFC 8058) only on https URLs."""
    from urllib.parse import urlsplit

    from dripper.transport.smtp import is_loopback

    if config.transport.kind != "smtp":
        return []
    base = str(config.tracking.base_url)
    parts = urlsplit(base)
    found = []
    if parts.scheme != "https":
        found.append(
            f"[tracking] base_url = {base!r} is not https: one-click unsubscribe (RFC 8058) "
            "needs https; put `dripper serve` behind a TLS proxy and set its public URL"
        )
    if parts.hostname and is_loopback(parts.hostname):
        found.append(
            f"[tracking] base_url = {base!r} points at this machine: no customer can reach "
            "it, so every link and unsubscribe in your emails would fail"
        )
    return found


def _relays(config: Config) -> list[Problem]:
    """Apple's relay ranges, when configured, load as `serve` loads them."""
    path = str(config.tracking.apple_relay_ranges or "")
    if not path:
        return []  # before the imports: services.hits brings the store (~0.3 s)
    from dripper.errors import ConfigError
    from dripper.errors import Problem as Found
    from dripper.services.hits import load_relay_ranges

    try:
        load_relay_ranges(path)
    except ConfigError as exc:
        where = str(config.path or "config.toml")
        return [Found(where, None, None, str(exc))]  # the message names the key
    return []


def _transport(config: Config) -> list[Problem]:
    """What `run` would refuse about the transport (plain text off loopback, a password
    variable left empty), found before the daemon is started."""
    from dripper.errors import ConfigError
    from dripper.errors import Problem as Found

    if config.transport.kind != "smtp":
        return []
    from dripper.transport.smtp import SmtpTransport

    try:
        SmtpTransport.from_config(config)
    except ConfigError as exc:
        return [Found(str(config.path or "config.toml"), None, None, str(exc))]
    return []

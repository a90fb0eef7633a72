"""`dripper check`: load every campaign and template and list every problem found."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dripper.cli.common import app, config_option


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
@config_option
def check(as_json: bool) -> None:
    """Load every campaign and template; print one line per problem (exit 1 if any)."""
    from dripper.campaigns import load_campaigns

    config = app().config
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "campaigns": [c.name for c in campaigns],
                    "problems": [
                        {"file": p.file, "line": p.line, "key": p.key, "message": p.message}
                        for p in problems
                    ],
                },
                indent=2,
            )
        )
    else:
        for problem in problems:
            click.echo(str(problem))
        steps = sum(len(c.steps) for c in campaigns)
        verdict = f"{len(problems)} problem(s)" if problems else "no problems"
        click.echo(
            f"{len(campaigns)} campaign(s), {steps} step(s) in {config.campaigns_dir}: {verdict}",
            err=bool(problems),
        )
    if problems:
        click.get_current_context().exit(1)

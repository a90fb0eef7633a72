"""The `dripper` command line.

Subcommands load lazily: `dripper --help` and `dripper preview` must not pay for the
database, SMTP or DKIM stacks (DESIGN 11: a preview in under 0.5 s).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from dripper.cli.common import AppContext, config_option, report_error

# name -> "module:attribute"; the module is imported only when the command runs
# (or when help lists it, which is why command modules keep their imports light).
COMMANDS = {
    "init": "dripper.cli.init:init",
    "check": "dripper.cli.check:check",
    "customers": "dripper.cli.customers:customers",
    "event": "dripper.cli.event:event",
    "events": "dripper.cli.events:events",
    "db": "dripper.cli.db:db",
    "run": "dripper.cli.run:run",
    "simulate": "dripper.cli.simulate:simulate",
    "preview": "dripper.cli.preview:preview",
    "send-test": "dripper.cli.sendtest:send_test",
    "campaigns": "dripper.cli.resume:campaigns",
    "pause": "dripper.cli.resume:pause",
    "resume": "dripper.cli.resume:resume",
    "serve": "dripper.cli.serve:serve",
    "inbound": "dripper.cli.inbound:inbound",
    "stats": "dripper.cli.stats:stats",
    "tasks": "dripper.cli.tasks:tasks",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; errors become one line."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # `dripper customers export | head`: the reader left, as Unix tools expect;
            # stop quietly (and let the interpreter's last flush go nowhere).
            _quiet_stdout()
            ctx.exit(0)
        except Exception as exc:  # one line for the user, never a traceback
            ctx.exit(report_error(exc))


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dripper-mail")
@config_option
@click.option(
    "--now",
    "now_text",
    metavar="ISO8601",
    help="Fix the clock (tests, simulation, catching up), e.g. 2027-03-01T07:00:00Z.",
)
@click.pass_context
def cli(ctx: click.Context, now_text: str | None) -> None:
    """dripper: keep customers for life by email.

    Campaigns are YAML files in campaigns/, emails are MJML or HTML templates in
    templates/. Start with `dripper init`, then `dripper check`.
    """
    ctx.ensure_object(AppContext).set_now(now_text)


def _quiet_stdout() -> None:
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (tests capture output)
        pass


def main() -> None:
    import sys

    # Text that is not UTF-8 (a lone surrogate from a hostile file) is shown escaped,
    # never a UnicodeEncodeError while printing an error about it.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    cli(prog_name="dripper")

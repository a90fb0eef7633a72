"""`dripper inbound [FILE|-]`: one raw message from an MTA pipe (or a file), classified,
recorded once and acted on, like the IMAP poller and `POST /inbound` do.

For an MTA: exit 0 when the message was taken (whatever its class), 2 when it cannot be
(too large, empty, not a message; a bad config), 75 (EX_TEMPFAIL) on any temporary failure
(the database unreachable, SQLite locked past its busy timeout, a full disk, a read-only
database file), so the MTA keeps the message and tries again, and 1 for anything else (a
bug). Postfix and Exim bounce a message on any other status, so 75 is what keeps a
customer's reply from bouncing while the database is away.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from dripper.cli.common import AppContext
    from dripper.services.listening import Listener

EX_TEMPFAIL = 75


@click.command()
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("--json", "as_json", is_flag=True, help="Print what became of it as JSON.")
@config_option
def inbound(source: str, as_json: bool) -> None:
    """Take in one raw inbound message (a reply, a bounce, a complaint, an auto-reply)
    from FILE or standard input (an MTA pipe)."""
    from dripper.errors import InputError
    from dripper.services.inbound import MAX_MESSAGE_BYTES, temporary

    raw = _read(source, MAX_MESSAGE_BYTES)
    if not raw.strip():
        raise InputError(f"{_shown(source)}: empty: not a message")
    ctx = app()
    try:
        listener = _listener(ctx)
        taken = listener.take_in(raw, via="pipe", now=ctx.now())
    except Exception as exc:
        if not temporary(exc):
            raise
        click.echo(
            f"error: not recorded: {_first_line(exc)} (temporary: the MTA keeps the message "
            "and tries again)",
            err=True,
        )
        click.get_current_context().exit(EX_TEMPFAIL)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "class": taken.kind.value,
                    "new": taken.new,
                    "address": taken.address,
                    "reason": taken.reason,
                }
            )
        )
        return
    what = taken.kind.value.replace("_", " ")
    again = "" if taken.new else " (recorded before: nothing done again)"
    click.echo(f"{what}: {taken.address or '-'}: {taken.reason}{again}")


def _read(source: str, limit: int) -> bytes:
    """At most `limit` bytes; a bigger message is refused without reading it whole."""
    from dripper.errors import InputError

    try:
        if source == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with Path(source).open("rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(
            f"{_shown(source)}: larger than {limit // (1024 * 1024)} MiB: refused "
            "(no reply or bounce is that large; attachments do not belong here)"
        )
    return data


def _first_line(exc: BaseException) -> str:
    """The database's own words, one line: a driver error without SQLAlchemy's statement
    and background link (a StoreError is one line already, its password hidden)."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def _shown(source: str) -> str:
    return "standard input" if source == "-" else source


def _listener(ctx: AppContext) -> Listener:
    """The listening service, with the campaigns a reply may end (one that does not load
    is left out with a warning: a message is never refused for a typo in a campaign)."""
    from dripper.campaigns import load_campaigns
    from dripper.services.listening import Listener

    config = ctx.config
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    if problems:
        broken = sorted({p.file for p in problems})
        click.echo(f"warning: leaving out {', '.join(broken)} (run `dripper check`)", err=True)
    return Listener(config, ctx.store(), campaigns)

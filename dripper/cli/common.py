"""What every command shares: the config, the clock, the store, and error reporting."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dripper.errors import CampaignError, DripperError

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """Per-invocation state, built lazily so a command pays only for what it uses."""

    def __init__(self) -> None:
        self.config_path: Path | None = None
        self._now: datetime | None = None
        self._config: Config | None = None
        self._store: Store | None = None

    def set_now(self, text: str | None) -> None:
        if text is None:
            return
        from dripper.timeparse import parse_instant

        try:
            self._now = parse_instant(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None

    def now(self) -> datetime:
        """The one place the CLI reads the clock; `--now` fixes it."""
        return self._now if self._now is not None else datetime.now(UTC)

    @property
    def fixed_now(self) -> datetime | None:
        """The instant `--now` fixed, if it did (handed on to `serve --workers`)."""
        return self._now

    @property
    def config(self) -> Config:
        if self._config is None:
            from dripper.config import find_config, load_config

            self._config = load_config(find_config(self.config_path))
        return self._config

    def store(self) -> Store:
        """The store with its schema ready (created on a fresh database)."""
        if self._store is None:
            from dripper.store import open_store

            store = open_store(
                self.config.database_url, consent_default=self.config.consent.default
            )
            try:
                store.ensure_schema()
            except BaseException:
                store.close()
                raise
            self._store = store
            click.get_current_context().call_on_close(store.close)
        return self._store


def app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    return ctx.ensure_object(AppContext)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        app(ctx).config_path = Path(value)


def config_option(f: F) -> F:
    """`--config PATH`, accepted on the group and on every command (DESIGN 5)."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        expose_value=False,
        is_eager=True,
        callback=_set_config,
        help="Path to config.toml (default: ./config.toml).",
    )(f)


def report_error(exc: BaseException) -> int:
    """Print `exc` as one line per problem on stderr and return the exit code."""
    if isinstance(exc, CampaignError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        return 1
    if isinstance(exc, DripperError):
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    if os.environ.get("DRIPPER_DEBUG"):
        raise exc
    click.echo(
        f"internal error: {type(exc).__name__}: {exc} "
        "(this is a bug in dripper; run with DRIPPER_DEBUG=1 for the traceback and report it)",
        err=True,
    )
    return 1


def is_terminal() -> bool:
    return sys.stderr.isatty()

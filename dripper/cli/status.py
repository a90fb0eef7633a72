"""What the daemon tells its operator: a live status line on a terminal, structured logs
(one JSON object per line on stderr) otherwise, for journald, Docker or a log shipper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from dripper.cli.common import AppContext
    from dripper.runner import Report, Runner

log = logging.getLogger("dripper.run")

# LogRecord attributes that are not extra fields of ours.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


def setup_logging(console: Console | None) -> None:
    """Terminal: readable lines above the status line. Otherwise: JSON lines."""
    root = logging.getLogger("dripper")
    root.setLevel(logging.INFO)
    root.handlers.clear()
    root.propagate = False
    if console is not None:
        from rich.logging import RichHandler

        root.addHandler(RichHandler(console=console, show_path=False, markup=False))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)


class StatusLine:
    """`async with StatusLine(runner, ctx):` shows sent/s, due, retrying, failed and
    ambiguous, refreshed every second (database counts every few seconds)."""

    def __init__(self, runner: Runner, ctx: AppContext, *, terminal: bool | None = None) -> None:
        self.runner = runner
        self.ctx = ctx
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.console: Console | None = None
        self.live: Live | None = None
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._rate = 0.0
        if self.terminal:
            from rich.console import Console

            self.console = Console(stderr=True)
        setup_logging(self.console)

    async def __aenter__(self) -> StatusLine:
        if self.console is not None:
            from rich.live import Live

            self.live = Live(self._line(), console=self.console, refresh_per_second=2)
            self.live.start()
            self._task = asyncio.create_task(self._refresh())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.live is not None:
            self._count()
            self.live.update(self._line())
            self.live.stop()

    def passed(self, report: Report) -> None:
        """After each pass: one structured record when it did something."""
        if report.enrolled or report.sent or report.failed or report.deferred or report.ambiguous:
            log.info(
                "pass",
                extra={
                    "enrolled": report.enrolled,
                    "sent": report.sent,
                    "deferred": report.deferred,
                    "failed": report.failed,
                    "ambiguous": report.ambiguous,
                    "skipped": report.skipped,
                    "cancelled": report.cancelled,
                },
            )
        for warning in report.warnings:
            log.warning(warning)

    async def _refresh(self) -> None:
        progress = self.runner.sender.progress
        last_sent, last_time, last_count = progress.sent, time.monotonic(), 0.0
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            sent = progress.sent
            self._rate = (sent - last_sent) / (now - last_time)
            last_sent, last_time = sent, now
            if now - last_count >= 3:
                with contextlib.suppress(Exception):  # a status line never stops the daemon
                    self._count()
                last_count = now
            if self.live is not None:
                self.live.update(self._line())

    def _count(self) -> None:
        from dripper.store import deliveries

        with self.runner.store.reading() as conn:
            self.counts = deliveries.status_counts(conn, now=self.ctx.now())

    def _line(self) -> str:
        c = self.counts
        sent = self.runner.sender.progress.sent
        return (
            f"sent {sent} ({self._rate:.0f}/s) · due {c.get('due', 0)} · "
            f"retrying {c.get('retrying', 0)} · failed {c.get('failed', 0)} · "
            f"ambiguous {c.get('ambiguous', 0)}"
        )

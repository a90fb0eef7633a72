"""`dripper events import FILE.csv`: many events at once, an order history above all.

The file is streamed into one transaction, a batch at a time, like `customers import`:
memory does not grow with the rows, all or nothing holds (the first bad row, unless
--skip-invalid, rolls everything back; the reading goes on, writing nothing, to list
every bad row), and importing a file again records nothing new when its rows have ids.

Without --enroll the events are history: they update each customer (purchases, spend,
first and last purchase, then the spend percentiles) but enroll nobody and convert no
goal (store/history.py). With --enroll they are planned like `dripper event`, in
batches that hold each customer once (so a customer's second purchase sees the first).
"""

from __future__ import annotations

import json
import os
import stat
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from dripper.cli.common import app, config_option
from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.cli.common import AppContext
    from dripper.eventdata import NewEvent
    from dripper.services.planning import Planner
    from dripper.services.report import Report
    from dripper.store import Connection

ENROLL_BATCH = 2000  # events per planned batch (each customer once)
_PROGRESS_EVERY = 1000
_WARNINGS_SHOWN = 20  # then a count


@click.group()
@config_option
def events() -> None:
    """Events in bulk: an order history, a backfill."""


@events.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even if some are bad.")
@click.option(
    "--enroll",
    is_flag=True,
    help="Plan what the events cause (enrollments, goals), as `dripper event` does. "
    "Without it they are history: customers are updated, nobody is enrolled.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@config_option
def import_(file: Path, skip_invalid: bool, enroll: bool, as_json: bool) -> None:
    """Import events from a CSV file: columns type, email, at (required), id, amount,
    currency (optional); every other column is event data.

    Rows with an id are recorded once: importing the same file twice records nothing
    the second time. A file with any bad row imports nothing and exits 2, listing every
    bad row by line (--skip-invalid imports the good rows).
    """
    ctx = app()
    summary = import_file(ctx, file, skip_invalid=skip_invalid, enroll=enroll)
    if as_json:
        click.echo(json.dumps(summary.as_json(file), indent=2))
        return
    what = "planned" if enroll else "history: nobody enrolled"
    line = (
        f"imported {file}: {summary.recorded:,} event(s) recorded, "
        f"{summary.duplicates:,} duplicate(s) (recorded before), "
        f"{summary.bad_rows:,} bad row(s) skipped; {what}"
    )
    if enroll:
        line += f", {summary.enrolled:,} enrollment(s)"
    click.echo(line)


@dataclass
class EventsSummary:
    rows: int = 0  # non-empty rows read, good and bad
    recorded: int = 0
    duplicates: int = 0
    bad_rows: int = 0
    enrolled: int = 0
    warnings: int = 0
    enroll: bool = False

    def as_json(self, file: Path) -> dict[str, Any]:
        return {
            "file": str(file),
            "rows": self.rows,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "bad_rows_skipped": self.bad_rows,
            "enrolled": self.enrolled,
            "warnings": self.warnings,
            "history": not self.enroll,
        }


def import_file(ctx: AppContext, file: Path, *, skip_invalid: bool, enroll: bool) -> EventsSummary:
    """Import `file`; bad rows and warnings are printed on stderr as found. Raises
    InputError (exit 2) for an unreadable file or, without `skip_invalid`, bad rows."""
    from dripper.customers.lines import NotUtf8

    planner = _planner(ctx)
    try:
        with file.open("rb") as raw:
            return _import(ctx, planner, file, raw, skip_invalid=skip_invalid, enroll=enroll)
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except NotUtf8 as exc:
        raise InputError(
            f"{file}:{exc.line}: not UTF-8 text (byte {exc.start + 1} of the line): "
            "save it as CSV UTF-8"
        ) from None
    except BrokenPipeError:
        raise
    except IsADirectoryError:
        raise InputError(f"{file}: is a folder, not a CSV file") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None


class _Refused(Exception):
    """A bad row without --skip-invalid: nothing of the file may be written."""


def _import(
    ctx: AppContext,
    planner: Planner,
    file: Path,
    raw: BinaryIO,
    *,
    skip_invalid: bool,
    enroll: bool,
) -> EventsSummary:
    from dripper.cli.progress import FileProgress
    from dripper.customers.csvio import RowProblem
    from dripper.events_csv import EventSheet
    from dripper.services.report import Report
    from dripper.store.history import HistoryLoad

    shown = str(file)

    def check(event: NewEvent) -> None:
        # What a subject may show must be one line: only events that are planned (and
        # so may reach an email as `event`) need it.
        planner.check(event.at, event.data, where="data")

    sheet = EventSheet(raw, currency=planner.config.currency, check=check if enroll else None)
    if sheet.header_problems:
        for problem in sheet.header_problems:
            click.echo(problem.render(shown), err=True)
        raise InputError(f"{file}: the header row is bad; nothing imported")

    store, now, currency = planner.store, ctx.now(), planner.config.currency
    summary = EventsSummary(enroll=enroll)
    info = os.fstat(raw.fileno())
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0  # a pipe has no known size
    rows = iter(sheet)
    good = 0

    with FileProgress(f"Importing {file.name}", size) as progress:

        def said(report: Report) -> None:
            summary.recorded += report.recorded
            summary.duplicates += report.duplicates
            summary.enrolled += report.enrolled
            for warning in report.warnings:
                summary.warnings += 1
                if summary.warnings <= _WARNINGS_SHOWN:
                    progress.say(f"warning: {warning}")

        try:
            with ExitStack() as stack:
                conn: Connection | None = None
                history: HistoryLoad | None = None
                batch: list[NewEvent] = []
                seen: set[str] = set()

                def begin() -> Connection:
                    nonlocal conn
                    if conn is None:  # at the first write: a bad early row locks nothing
                        conn = stack.enter_context(store.transaction())
                    return conn

                def write() -> None:  # --enroll: a planned batch, each customer once
                    nonlocal batch, seen
                    if batch:
                        said(planner.record_batch_in(begin(), batch, now))
                    batch, seen = [], set()

                for item in rows:
                    if isinstance(item, RowProblem):
                        summary.bad_rows += 1
                        progress.say(item.render(shown))
                        if not skip_invalid:
                            raise _Refused
                        continue
                    good += 1
                    if good % _PROGRESS_EVERY == 0:
                        progress.update(sheet.lines.consumed)
                    event = item.event
                    if not enroll:
                        if history is None:
                            history = store.history_load(begin(), now=now, currency=currency)
                            stack.callback(history.close)
                        history.add(event, item.money)
                        continue
                    if event.email in seen or len(batch) >= ENROLL_BATCH:
                        write()
                    batch.append(event)
                    seen.add(event.email)
                write()
                if history is not None:
                    loaded = history.finish()
                    said(
                        Report(
                            recorded=loaded.recorded,
                            duplicates=loaded.duplicates,
                            warnings=loaded.warnings,
                        )
                    )
        except _Refused:
            for item in rows:  # read on, only to list every bad row
                if isinstance(item, RowProblem):
                    summary.bad_rows += 1
                    progress.say(item.render(shown))
    if summary.warnings > _WARNINGS_SHOWN:
        click.echo(f"... and {summary.warnings - _WARNINGS_SHOWN} more warning(s)", err=True)
    if summary.bad_rows and not skip_invalid:
        raise InputError(
            f"{file}: {summary.bad_rows} bad row(s); nothing imported "
            "(fix them, or use --skip-invalid to import the good rows)"
        )
    summary.rows = sheet.data_rows
    if summary.recorded:
        planner.refresh_spend(now)  # the spend percentiles and ranks, as a pass would
    return summary


def _planner(ctx: AppContext) -> Planner:
    from dripper.cli.event import planner_for

    return planner_for(ctx)

"""`dripper customers import FILE`: the file streamed into one transaction.

The rows are read, checked and written a batch at a time while the file is read, so a
file of any size takes the same memory (a line is never held whole: see
customers/lines.py). All or nothing still holds: everything is written in one
transaction, and the first bad row (unless --skip-invalid) rolls it back; the reading
goes on, writing nothing, to list every bad row. On SQLite the write lock is held from
the first batch written to the end of the file, reading and checking included.

It also warns, per date-trigger column, about values that are not dates: a birthday of
1990-02-30 would silently never enroll its customer. A warning, not a refusal: a typo in
one birthday must not keep a shop's customers out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, overload

import click

from dripper.cli.progress import FileProgress as _Progress
from dripper.customers.batches import Batch, Batcher
from dripper.customers.csvio import RowProblem, SheetReader, SheetRow
from dripper.customers.lines import NotUtf8
from dripper.engine.dates import SHOWN, BadDate, date_problem, summarize
from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.cli.common import AppContext
    from dripper.store import Connection

_PROGRESS_EVERY = 1000  # rows between progress updates


@dataclass
class ImportSummary:
    rows: int = 0  # non-empty rows read, good and bad
    inserted: int = 0
    updated: int = 0
    merged: int = 0  # rows folded into another row of the same address
    suppressed: int = 0
    bad_rows: int = 0

    def as_json(self, file: Path) -> dict[str, Any]:
        return {
            "file": str(file),
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "merged_duplicates": self.merged,
            "kept_suppressed": self.suppressed,
            "bad_rows_skipped": self.bad_rows,
        }


def import_file(ctx: AppContext, file: Path, *, skip_invalid: bool) -> ImportSummary:
    """Import `file`; every bad row and date warning is printed on stderr as found.
    Raises InputError (exit 2) for an unreadable file or, without `skip_invalid`, bad rows."""
    date_columns = _date_columns(ctx)
    try:
        with file.open("rb") as raw:
            return _import(ctx, file, raw, date_columns, skip_invalid=skip_invalid)
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except NotUtf8 as exc:
        raise InputError(
            f"{file}:{exc.line}: not UTF-8 text (byte {exc.start + 1} of the line): "
            "save it as CSV UTF-8"
        ) from None
    except BrokenPipeError:
        raise  # stderr or stdout went away: not the file's fault (the group handles it)
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None


def _import(
    ctx: AppContext,
    file: Path,
    raw: BinaryIO,
    date_columns: list[tuple[str, str]],
    *,
    skip_invalid: bool,
) -> ImportSummary:

    shown = str(file)
    sheet = SheetReader(raw)
    if sheet.ignored_columns:
        click.echo(
            f"{file}: ignoring column(s) dripper computes itself: "
            + ", ".join(sheet.ignored_columns),
            err=True,
        )
    if sheet.header_problems:
        for problem in sheet.header_problems:
            click.echo(problem.render(shown), err=True)
        raise InputError(f"{file}: the header row is bad; nothing imported")

    store, now = ctx.store(), ctx.now()
    summary = ImportSummary()
    dates = _DateCheck(date_columns)
    batcher = Batcher()
    good = 0
    info = os.fstat(raw.fileno())
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0  # a pipe has no known size
    items = iter(sheet)

    with _Progress(f"Importing {file.name}", size) as progress:

        def count(item: SheetRow) -> None:
            nonlocal good
            good += 1
            if good % _PROGRESS_EVERY == 0:
                progress.update(sheet.lines.consumed)
            if dates:
                dates.check(item.line, item.data.email, item.data.attributes)

        try:
            with ExitStack() as stack:
                conn: Connection | None = None

                def write(batch: Batch | None) -> None:
                    nonlocal conn
                    if batch is None:
                        return
                    if conn is None:  # begun at the first write: a bad early row locks nothing
                        conn = stack.enter_context(store.transaction())
                    counts = store.upsert_customers_in(
                        conn, batch.rows, now=now, again=batch.again, source=Path(shown).name
                    )
                    summary.inserted += counts.inserted
                    summary.updated += counts.updated
                    summary.suppressed += counts.suppressed

                for item in items:
                    if isinstance(item, RowProblem):
                        summary.bad_rows += 1
                        progress.say(item.render(shown))
                        if not skip_invalid:
                            raise _Refused  # rolls back what was written, and unlocks
                        continue
                    count(item)
                    write(batcher.add(item.data, sheet.lines.consumed))
                write(batcher.flush())
        except _Refused:
            for item in items:  # read on, only to list every bad row
                if isinstance(item, RowProblem):
                    summary.bad_rows += 1
                    progress.say(item.render(shown))
                else:
                    count(item)
        for line in dates.warnings():
            progress.say(f"warning: {line}")
    if summary.bad_rows and not skip_invalid:
        raise InputError(
            f"{file}: {summary.bad_rows} bad row(s); nothing imported "
            "(fix them, or use --skip-invalid to import the good rows)"
        )
    summary.rows = sheet.data_rows
    # Each address was counted once, as inserted or updated; every other good row merged.
    summary.merged = good - summary.inserted - summary.updated
    return summary


class _Refused(Exception):
    """A bad row without --skip-invalid: nothing of the file may be written."""


def _date_columns(ctx: AppContext) -> list[tuple[str, str]]:
    """(campaign, column) for each sheet column a date trigger reads. Campaigns that do
    not load are left out: `dripper check` reports them, an import must still work."""
    from dripper.campaigns import DateTrigger, load_campaigns
    from dripper.customers.model import BUILTIN_NAMES
    from dripper.engine.dates import customer_names

    config = ctx.config
    campaigns, _problems = load_campaigns(config.campaigns_dir, config.templates_dir)
    return [
        (campaign.name, column)
        for campaign in campaigns
        if isinstance(campaign.trigger, DateTrigger)
        for column in customer_names(campaign.trigger.date.source)
        if column not in BUILTIN_NAMES
    ]


class _DateCheck:
    """The rows whose value in a date-trigger column is not a date, column by column."""

    def __init__(self, columns: list[tuple[str, str]]) -> None:
        self._columns = columns
        self._bad = {column: _FirstBad() for _campaign, column in columns}

    def __bool__(self) -> bool:
        return bool(self._columns)

    def check(self, line: int, email: str, attributes: Mapping[str, str]) -> None:
        for column, bad in self._bad.items():
            problem = date_problem(attributes.get(column))
            if problem is not None:
                bad.add(BadDate(email, line, problem))

    def warnings(self) -> list[str]:
        """One per column, naming every campaign that reads it."""
        readers: dict[str, list[str]] = {}
        for campaign, column in self._columns:
            readers.setdefault(column, []).append(campaign)
        return [
            summarize(column, self._bad[column], users=_campaigns(names))
            for column, names in readers.items()
            if self._bad[column]
        ]


def _campaigns(names: list[str]) -> str:
    if len(names) == 1:
        return f"campaign {names[0]}"
    return f"campaigns {', '.join(names[:-1])} and {names[-1]}"


class _FirstBad(Sequence[BadDate]):
    """The first few bad values of a column (those `summarize` names) and how many there
    were in all (its `len`): a whole column of 31/12/1990 dates takes no memory."""

    def __init__(self) -> None:
        self._kept: list[BadDate] = []
        self._count = 0

    def add(self, item: BadDate) -> None:
        self._count += 1
        if len(self._kept) < SHOWN:
            self._kept.append(item)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> BadDate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[BadDate]: ...
    def __getitem__(self, index: int | slice) -> BadDate | Sequence[BadDate]:
        return self._kept[index]  # only the first SHOWN are kept: all summarize reads

"""Events as CSV (`dripper events import`): read and check rows one at a time.

Pure: bytes in, each row as a `NewEvent` or as the problem that makes it bad (by line),
as a stream (a file of any size in bounded memory). Columns `type`, `email`, `at` are
required; `id`, `amount`, `currency` are known; every other column becomes a `data`
string (an empty cell is no field). Checked as `dripper event` checks an event: the
type's shape, the address, the time, the id, the money; the caller adds what depends on
the campaigns (`check`).
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple

from dripper.customers.addresses import normalize_email
from dripper.customers.csvio import MAX_FIELD, RowProblem
from dripper.customers.lines import Lines
from dripper.errors import InputError
from dripper.eventdata import NewEvent, check_at, check_event_id
from dripper.money import Money, event_money
from dripper.timeparse import parse_instant

REQUIRED = ("type", "email", "at")
KNOWN = (*REQUIRED, "id", "amount", "currency")
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # as `dripper event TYPE`


class EventRow(NamedTuple):
    line: int  # where the row starts (a quoted cell may span lines)
    event: NewEvent
    money: Money | None = None  # a purchase's or refund's, checked


# An order history names each customer many times; checking an address costs ~25 us, so
# the checked form of the last many addresses is kept (a fixed bound: memory stays flat).
@functools.lru_cache(maxsize=1 << 18)
def _address(text: str) -> str:
    return normalize_email(text)


class EventSheet:
    """An events CSV, one record at a time: the header is read and checked when the
    sheet is made (`header_problems`); iterating gives each non-empty row in file order
    as an EventRow or a RowProblem. `check(event)` may refuse an event with an
    InputError (what the campaigns' subjects can show, for one).

    Raises lines.NotUtf8 when a line is not UTF-8, and whatever reading `raw` raises."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        currency: str,
        check: Callable[[NewEvent], None] | None = None,
    ) -> None:
        csv.field_size_limit(MAX_FIELD)
        self.lines = Lines(raw)
        self._reader = csv.reader(self.lines)
        self._currency = currency
        self._check = check
        self.columns: list[str] = []
        self.header_problems = self._read_header()
        self.data_rows = 0

    def _read_header(self) -> list[RowProblem]:
        try:
            header = next(self._reader)
        except StopIteration:
            return [RowProblem(1, "the file is empty: it needs a header row (type,email,at)")]
        except csv.Error as exc:
            return [RowProblem(1, f"unreadable header: {exc}")]
        flags = self.lines.take_flags(self._reader.line_num)
        if flags:
            return [RowProblem(1, f"header row: {flags[0].message}")]
        problems: list[str] = []
        seen: set[str] = set()
        for position, raw in enumerate(header, start=1):
            name = raw.strip()
            if name.lower() in KNOWN:
                name = name.lower()
            if not name:
                problems.append(f"column {position} has no name in the header row")
            elif name.lower() in seen:
                problems.append(f"column '{name}' appears twice in the header row")
            seen.add(name.lower())
            self.columns.append(name)
        missing = [c for c in REQUIRED if c not in self.columns]
        if missing and not problems:
            problems.append(
                f"the header row has no {', '.join(repr(c) for c in missing)} column "
                f"(an events file has {', '.join(REQUIRED)}, and optionally id, amount, "
                "currency and data columns)"
            )
        return [RowProblem(1, m) for m in problems]

    def __iter__(self) -> Iterator[EventRow | RowProblem]:
        if self.header_problems:
            return
        reader, lines = self._reader, self.lines
        line = reader.line_num + 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                lines.take_flags(reader.line_num)
                yield RowProblem(line, f"unreadable row: {exc}")
                line = reader.line_num + 1
                continue
            start, line = line, reader.line_num + 1
            if lines.flags:
                flags = lines.take_flags(reader.line_num)
                if flags:
                    self.data_rows += 1
                    yield RowProblem(start, flags[0].message)
                    continue
            if not any(cell.strip() for cell in record):
                continue
            self.data_rows += 1
            try:
                event, money = self._event(record)
            except InputError as exc:
                yield RowProblem(start, str(exc))
            else:
                yield EventRow(start, event, money)

    def _event(self, record: list[str]) -> tuple[NewEvent, Money | None]:
        if len(record) > len(self.columns):
            raise InputError(f"{len(record)} cells but the header has {len(self.columns)} columns")
        data: dict[str, str] = {}
        kind = email = at = ext_id = ""
        for name, cell in zip(self.columns, record, strict=False):
            value = cell.strip()
            if not value:
                continue
            if name == "type":
                kind = value
            elif name == "email":
                email = value
            elif name == "at":
                at = value
            elif name == "id":
                ext_id = value
            else:  # amount, currency and every other column: data
                data[name] = value
        if not EVENT_TYPE.fullmatch(kind):
            raise InputError(
                f"type {kind!r}: expected an event type like 'purchase' "
                "(lower-case letters, digits, '_', '-', '.')"
                if kind
                else "no type: every row needs one, like purchase"
            )
        if not email:
            raise InputError("no email: every row needs the customer's address")
        try:
            address = _address(email)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if not at:
            raise InputError("no time in 'at': when did it happen (like 2025-03-04T10:00:00Z)?")
        try:
            moment = parse_instant(at)
        except ValueError as exc:
            raise InputError(f"at: {exc}") from None
        check_at(moment, where="at")
        if ext_id:
            check_event_id(ext_id, where="id")
        money = event_money(kind, data, self._currency, where="data")
        event = NewEvent(address, kind, moment, data, ext_id or None)
        if self._check is not None:
            self._check(event)
        return event, money

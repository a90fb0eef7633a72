"""The customer sheet as CSV: read and validate rows one at a time, write an export.

Reading never touches the database: `SheetReader` gives each row, validated, or its
problem by line number, as a stream (a file of any size in bounded memory); the caller
decides what to write. `parse_customers` and `read_customers_csv` collect a small sheet
(samples, `customers add`) into memory, merged by address.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from dripper.customers.addresses import is_valid_timezone, normalize_email
from dripper.customers.lines import Lines
from dripper.customers.model import DERIVED_NAMES, FIELD_COLUMNS, Customer, CustomerData, Status

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
# Names end up in the To: header of every email: a line break there breaks (or forges)
# headers, so control characters (Unicode Cc, tab included) and the Unicode line and
# paragraph separators are refused in them. Other columns are data for bodies and keep
# theirs; a NUL is refused everywhere (see lines.py).
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = ("first_name", "last_name")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# A CSV cell starting with one of these is run as a formula by spreadsheet programs
# (OWASP "CSV injection"); an export prefixes such cells with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Columns of an export that dripper computes itself: an import skips them (and says so),
# so an export can be imported again; purchases come from `purchase` events only.
COMPUTED_COLUMNS = frozenset(
    {
        *DERIVED_NAMES,
        "status",
        "created_at",
        "spend_percentile",
        "spend_rank",
        "consent_at",  # the consent record's, written by export: never an attribute
        "consent_source",
    }
)
MAX_FIELD = 10_000  # characters; a runaway quoted field is a broken file, not a customer


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str

    def render(self, path: str) -> str:
        return f"{path}:{self.line}: {self.message}"


class SheetRow(NamedTuple):  # a tuple: made once per row, it must be cheap
    line: int  # where the row starts (a quoted cell may span lines)
    data: CustomerData


class SheetReader:
    """A customer CSV, one record at a time: the header is read (and checked) when the
    reader is made; iterating gives each non-empty row, in file order, as a SheetRow or
    as the RowProblem that makes it bad. Nothing is merged or kept.

    Raises lines.NotUtf8 (a UnicodeDecodeError) when a line is not UTF-8, and whatever
    reading `raw` raises."""

    def __init__(self, raw: BinaryIO) -> None:
        csv.field_size_limit(MAX_FIELD)
        self.lines = Lines(raw)
        self._reader = csv.reader(self.lines)
        self.columns: list[str] = []
        self.ignored_columns: tuple[str, ...] = ()  # columns dripper computes (an export's)
        self.header_problems = self._read_header()
        self.data_rows = 0  # non-empty rows read so far, good and bad

    def _read_header(self) -> list[RowProblem]:
        try:
            header = next(self._reader)
        except StopIteration:
            return [RowProblem(1, "the file is empty: it needs a header row")]
        except csv.Error as exc:
            return [RowProblem(1, f"unreadable header: {exc}")]
        flags = self.lines.take_flags(self._reader.line_num)
        if flags:
            return [RowProblem(1, f"header row: {flags[0].message}")]
        self.columns, problems = _check_header(header)
        self.ignored_columns = tuple(c for c in self.columns if c.lower() in COMPUTED_COLUMNS)
        return [RowProblem(1, m) for m in problems]

    def __iter__(self) -> Iterator[SheetRow | RowProblem]:
        if self.header_problems:
            return
        reader, lines, columns = self._reader, self.lines, self.columns
        line = reader.line_num + 1  # first line of the next record (records may span lines)
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
            if lines.flags:  # a NUL, or a line too long to keep, inside this record
                flags = lines.take_flags(reader.line_num)
                if flags:
                    self.data_rows += 1
                    yield RowProblem(start, flags[0].message)
                    continue
            if not any(cell.strip() for cell in record):
                continue
            self.data_rows += 1
            row, message = _row(columns, record)
            yield RowProblem(start, message) if row is None else SheetRow(start, row)


@dataclass(frozen=True)
class ParsedSheet:
    """What a small CSV file says: unique customers in file order, and every bad row."""

    rows: list[CustomerData]
    problems: list[RowProblem]
    data_rows: int  # non-empty rows read, good and bad
    merged: int  # rows folded into an earlier row with the same address
    ignored_columns: tuple[str, ...] = ()  # columns dripper computes itself (an export's)


def read_customers_csv(path: Path) -> ParsedSheet:
    """Read, validate and merge a small customer CSV (the sample sheet) in memory.
    Raises OSError/UnicodeDecodeError for an unreadable file (the caller reports it)."""
    with path.open("rb") as raw:
        return _collect(SheetReader(raw))


def parse_customers(handle: IO[str]) -> ParsedSheet:
    """`read_customers_csv` for text already in memory (`customers add`, tests)."""
    # Back to bytes so that text and files go through one reader; a lone surrogate (a
    # command-line argument that was not UTF-8) makes bytes that are not UTF-8 either.
    raw = io.BytesIO(handle.read().encode("utf-8", "surrogatepass"))
    return _collect(SheetReader(raw))


def _collect(sheet: SheetReader) -> ParsedSheet:
    problems = list(sheet.header_problems)
    by_email: dict[str, CustomerData] = {}
    merged = 0
    for item in sheet:
        if isinstance(item, RowProblem):
            problems.append(item)
            continue
        row = item.data
        earlier = by_email.get(row.email)
        if earlier is None:
            by_email[row.email] = row
        else:
            by_email[row.email] = earlier.merged_with(row)
            merged += 1
    return ParsedSheet(
        list(by_email.values()), problems, sheet.data_rows, merged, sheet.ignored_columns
    )


def _check_header(header: Sequence[str]) -> tuple[list[str], list[str]]:
    """Normalise column names: fields match case-insensitively, attributes keep their name."""
    columns: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(header, start=1):
        name = raw.strip()
        lowered = name.lower()
        if lowered in FIELD_COLUMNS:
            name = lowered
        if not name:
            problems.append(f"column {position} has no name in the header row")
        elif lowered in seen:
            problems.append(f"column '{name}' appears twice in the header row")
        seen.add(lowered)
        columns.append(name)
    if "email" not in columns and not problems:
        problems.append("the header row has no 'email' column")
    return columns, problems


def unescape_cell(value: str) -> str:
    """What `escape_cell` wrote, back: `'=SUM(1)` -> `=SUM(1)`, `'+34 600` -> `+34 600`,
    `''quoted` -> `'quoted`: a leading apostrophe marks text, as in every spreadsheet."""
    return value[1:] if value.startswith("'") else value


def _row(columns: list[str], record: list[str]) -> tuple[CustomerData | None, str]:
    if len(record) > len(columns):
        return None, f"{len(record)} cells but the header has {len(columns)} columns"
    values = dict(zip(columns, (unescape_cell(cell.strip()) for cell in record), strict=False))
    try:
        email = normalize_email(values.get("email", ""))
    except ValueError as exc:
        return None, str(exc)
    for name in _NAMES:
        problem = name_problem(name, values.get(name))
        if problem:
            return None, problem
    timezone = values.get("timezone") or None
    if timezone is not None and (problem := timezone_problem(timezone)):
        return None, problem
    locale = values.get("locale") or None
    if locale is not None and (problem := locale_problem(locale)):
        return None, problem
    marketing = (values.get("marketing") or "").lower() or None
    if marketing is not None and marketing not in ("subscribed", "not_subscribed", "unsubscribed"):
        return None, (
            f"marketing {values['marketing']!r}: one of subscribed, not_subscribed, "
            "unsubscribed (or empty: left as it is)"
        )
    tags: tuple[str, ...] | None = None
    if "tags" in values:
        tags = tuple(dict.fromkeys(t.strip() for t in values["tags"].split(";") if t.strip()))
    attributes = {
        k: v
        for k, v in values.items()
        if v and k not in FIELD_COLUMNS and k.lower() not in COMPUTED_COLUMNS
    }
    return (
        CustomerData(
            email=email,
            first_name=values.get("first_name") or None,
            last_name=values.get("last_name") or None,
            timezone=timezone,
            locale=locale,
            tags=tags,
            attributes=attributes,
            marketing=Status(marketing) if marketing else None,
        ),
        "",
    )


def name_problem(name: str, value: str | None) -> str:
    """What is wrong with a first or last name ("" for nothing): the same rule for a CSV
    row, `customers add` and an event's `customer` object."""
    if value and (found := _NOT_IN_NAMES.search(value)) is not None:
        return (
            f"{name} contains {_describe(found.group())}: a name goes into the To: "
            "header of every email (remove it)"
        )
    return ""


def timezone_problem(value: str) -> str:
    if is_valid_timezone(value):
        return ""
    return f"unknown time zone {value!r} (use an IANA name like 'America/New_York')"


def locale_problem(value: str) -> str:
    if _LOCALE.match(value):
        return ""
    return f"bad locale {value!r} (use a code like 'en' or 'pt-BR')"


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if char in _LINE_BREAKS:
        return f"a line break ({code})"
    if char == "\t":
        return f"a tab ({code})"
    return f"a control character ({code})"


# --- export -------------------------------------------------------------------------------

EXPORT_FIELDS = (
    *FIELD_COLUMNS,
    "status",
    "purchases",
    "total_spent",
    "first_purchase_at",
    "last_purchase_at",
    "created_at",
    "consent_at",
    "consent_source",
)


def escape_cell(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula."""
    return "'" + value if value.startswith((*_FORMULA_START, "'")) else value


def export_rows(
    customers: Iterable[Customer],
    attribute_names: Sequence[str],
    consent: Callable[[Customer], tuple[datetime, str] | None] = lambda c: None,
) -> Iterator[list[str]]:
    """The header, then one escaped row per customer: fields, derived values, the last
    change of their consent (when, and `kind:source`), attributes."""
    yield [*EXPORT_FIELDS, *attribute_names]
    for c in customers:
        last = consent(c)
        fields: Mapping[str, Any] = {
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "timezone": c.timezone or "",
            "locale": c.locale or "",
            "tags": ";".join(c.tags),
            "marketing": c.status.value,
            "status": c.status.value,
            "purchases": str(c.purchases),
            "total_spent": f"{c.total_spent:.2f}",
            "first_purchase_at": _iso(c.first_purchase_at),
            "last_purchase_at": _iso(c.last_purchase_at),
            "created_at": _iso(c.created_at),
            "consent_at": _iso(last[0]) if last else "",
            "consent_source": last[1] if last else "",
        }
        cells = [str(fields[name]) for name in EXPORT_FIELDS]
        cells += [str(c.attributes.get(name, "")) for name in attribute_names]
        yield [escape_cell(cell) for cell in cells]


def write_csv(handle: IO[str], rows: Iterable[list[str]]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    count = -1
    for count, row in enumerate(rows):  # noqa: B007 - count is the result
        writer.writerow(row)
    return max(count, 0)


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""

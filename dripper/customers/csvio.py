"""The customer sheet as CSV: read and validate every row (pure), write an export.

Reading never touches the database: it returns the rows, merged by address, and every
problem by line number, so the caller can refuse the whole file before writing anything.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dripper.customers.addresses import is_valid_timezone, normalize_email
from dripper.customers.model import DERIVED_NAMES, FIELD_COLUMNS, Customer, CustomerData

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
# A CSV cell starting with one of these is run as a formula by spreadsheet programs
# (OWASP "CSV injection"); an export prefixes such cells with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Columns of an export that dripper computes itself: an import skips them (and says so),
# so an export can be imported again; purchases come from `purchase` events only.
COMPUTED_COLUMNS = frozenset({*DERIVED_NAMES, "status", "created_at"})
MAX_FIELD = 10_000  # characters; a runaway quoted field is a broken file, not a customer


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str

    def render(self, path: str) -> str:
        return f"{path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ParsedSheet:
    """What a CSV file says: unique customers in file order, and every bad row."""

    rows: list[CustomerData]
    problems: list[RowProblem]
    data_rows: int  # non-empty rows read, good and bad
    merged: int  # rows folded into an earlier row with the same address
    ignored_columns: tuple[str, ...] = ()  # columns dripper computes itself (an export's)


def read_customers_csv(path: Path, *, on_row: Callable[[int], None] | None = None) -> ParsedSheet:
    """Read and validate a customer CSV. `on_row(n)` reports progress in rows.
    Raises OSError/UnicodeDecodeError for an unreadable file (the caller reports it)."""
    # utf-8-sig: spreadsheet programs put a byte-order mark in front of the header.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return parse_customers(handle, on_row=on_row)


def parse_customers(handle: IO[str], *, on_row: Callable[[int], None] | None = None) -> ParsedSheet:
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(handle)
    problems: list[RowProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        return ParsedSheet([], [RowProblem(1, "the file is empty: it needs a header row")], 0, 0)
    except csv.Error as exc:
        return ParsedSheet([], [RowProblem(1, f"unreadable header: {exc}")], 0, 0)

    columns, header_problems = _check_header(header)
    ignored = tuple(c for c in columns if c.lower() in COMPUTED_COLUMNS)
    if header_problems:
        return ParsedSheet([], [RowProblem(1, m) for m in header_problems], 0, 0)

    by_email: dict[str, CustomerData] = {}
    data_rows = merged = 0
    line = reader.line_num + 1  # first line of the next record (records may span lines)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(line, f"unreadable row: {exc}"))
            line = reader.line_num + 1
            continue
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        data_rows += 1
        if on_row is not None and data_rows % 1000 == 0:
            on_row(1000)
        row, message = _row(columns, record)
        if row is None:
            problems.append(RowProblem(start, message))
            continue
        earlier = by_email.get(row.email)
        if earlier is None:
            by_email[row.email] = row
        else:
            by_email[row.email] = earlier.merged_with(row)
            merged += 1
    if on_row is not None:
        on_row(data_rows % 1000)
    return ParsedSheet(list(by_email.values()), problems, data_rows, merged, ignored)


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


def _row(columns: list[str], record: list[str]) -> tuple[CustomerData | None, str]:
    if len(record) > len(columns):
        return None, f"{len(record)} cells but the header has {len(columns)} columns"
    values = dict(zip(columns, (cell.strip() for cell in record), strict=False))
    try:
        email = normalize_email(values.get("email", ""))
    except ValueError as exc:
        return None, str(exc)
    timezone = values.get("timezone") or None
    if timezone is not None and not is_valid_timezone(timezone):
        return None, f"unknown time zone {timezone!r} (use an IANA name like 'America/New_York')"
    locale = values.get("locale") or None
    if locale is not None and not _LOCALE.match(locale):
        return None, f"bad locale {locale!r} (use a code like 'en' or 'pt-BR')"
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
        ),
        "",
    )


# --- export -------------------------------------------------------------------------------

EXPORT_FIELDS = (
    *FIELD_COLUMNS,
    "status",
    "purchases",
    "total_spent",
    "first_purchase_at",
    "last_purchase_at",
    "created_at",
)


def escape_cell(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_rows(
    customers: Iterable[Customer], attribute_names: Sequence[str]
) -> Iterator[list[str]]:
    """The header, then one escaped row per customer: fields, derived values, attributes."""
    yield [*EXPORT_FIELDS, *attribute_names]
    for c in customers:
        fields: Mapping[str, Any] = {
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "timezone": c.timezone or "",
            "locale": c.locale or "",
            "tags": ";".join(c.tags),
            "status": c.status.value,
            "purchases": str(c.purchases),
            "total_spent": f"{c.total_spent:.2f}",
            "first_purchase_at": _iso(c.first_purchase_at),
            "last_purchase_at": _iso(c.last_purchase_at),
            "created_at": _iso(c.created_at),
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

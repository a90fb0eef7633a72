"""Reading an events CSV (`dripper events import`): each row an event or its problem by
line, streamed; the header checked first."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from dripper.customers.csvio import RowProblem
from dripper.eventdata import NewEvent
from dripper.events_csv import EventRow, EventSheet
from dripper.money import Money


def read(text: str) -> tuple[EventSheet, list[EventRow | RowProblem]]:
    sheet = EventSheet(io.BytesIO(text.encode("utf-8")), currency="USD")
    return sheet, list(sheet)


def test_rows_become_events_with_data_from_the_other_columns() -> None:
    """Known columns are fields; amount, currency and every other column are data
    strings; an empty cell is no field; the address is normalised; a purchase's money
    comes checked with it (in cents, the currency upper-cased)."""
    sheet, rows = read(
        "\ufeffType,Email,At,ID,amount,currency,product,note\n"
        "purchase,Ada@Example.COM,2025-03-01T10:00:00Z,o:1,24.50,eur,Guji,\n"
        "\n"
        "signup,b@example.com,2025-03-01,,,,,\n"
    )
    assert not sheet.header_problems
    assert rows == [
        EventRow(
            2,
            NewEvent(
                "ada@example.com",
                "purchase",
                datetime(2025, 3, 1, 10, tzinfo=UTC),
                {"amount": "24.50", "currency": "eur", "product": "Guji"},
                "o:1",
            ),
            Money(2450, "EUR"),
        ),
        EventRow(4, NewEvent("b@example.com", "signup", datetime(2025, 3, 1, tzinfo=UTC), {})),
    ]
    assert sheet.data_rows == 2


def test_each_bad_row_is_named_by_its_line() -> None:
    """Bad rows come back as problems at the line they start on (a quoted cell may span
    lines), and reading goes on."""
    _, rows = read(
        'type,email,at,id,amount,note\n'
        'purchase,a@example.com,2025-01-01T00:00:00Z,1,5,"two\nlines"\n'
        "purchase,a@example.com,2025-01-01T00:00:00Z,2,-5,\n"
        "refund,a@example.com,2025-01-01T00:00:00Z,3,,\n"
        "purchase,a@example.com,1066-10-14T00:00:00Z,4,5,\n"
        "purchase,,2025-01-01T00:00:00Z,5,5,\n"
        "purchase,a@example.com,,6,5,\n"
        "purchase,a@example.com,2025-01-01T00:00:00Z,7,5,x,y\n"
        "purchase,a@example.com,2025-01-01T00:00:00Z,has\x00nul,5,\n"
    )
    problems = {r.line: r.message for r in rows if isinstance(r, RowProblem)}
    assert isinstance(rows[0], EventRow)
    assert "purchase amount '-5'" in problems[4]
    assert "a refund needs the money returned" in problems[5]
    assert "out of range" in problems[6]
    assert "no email" in problems[7]
    assert "no time in 'at'" in problems[8]
    assert "7 cells but the header has 6 columns" in problems[9]
    assert "NUL" in problems[10]


def test_a_header_without_the_required_columns_is_refused() -> None:
    """type, email and at are required; a column twice or without a name is refused."""
    sheet, rows = read("email,amount\n")
    assert sheet.header_problems[0].message.startswith("the header row has no 'type', 'at'")
    assert rows == []
    sheet, _ = read("type,email,at,Type\n")
    assert "appears twice" in sheet.header_problems[0].message
    sheet, _ = read("")
    assert "the file is empty" in sheet.header_problems[0].message


def test_a_check_of_the_caller_refuses_a_row() -> None:
    """The caller's check (what the campaigns' subjects can show) refuses a row like any
    other problem."""
    from dripper.errors import InputError

    def no_breaks(event: NewEvent) -> None:
        if "\n" in str(event.data.get("product", "")):
            raise InputError("data: 'product' holds a line break")

    sheet = EventSheet(
        io.BytesIO(b'type,email,at,product\npurchase,a@example.com,2025-01-01,"a\nb"\n'),
        currency="USD",
        check=no_breaks,
    )
    (row,) = list(sheet)
    assert isinstance(row, RowProblem)
    assert "line break" in row.message

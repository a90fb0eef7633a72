"""Customer CSV parsing (pure): validation by line, merging, attributes, export escaping."""

from __future__ import annotations

import io

from dripper.customers.csvio import escape_cell, export_rows, parse_customers
from dripper.customers.model import Customer, Status


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_customers(io.StringIO(text))


def test_fields_tags_and_attributes() -> None:
    """Known columns are fields (any case), tags split on ';', other columns are attributes."""
    sheet = parse(
        "Email,First_Name,last_name,timezone,locale,tags,birthday,Favorite Coffee\n"
        " Ada@Example.COM ,Ada,Lovelace,Europe/London,en-GB,vip; espresso;vip,1815-12-10,Kenya\n"
    )
    assert sheet.problems == []
    (row,) = sheet.rows
    assert row.email == "ada@example.com"
    assert row.first_name == "Ada"
    assert row.tags == ("vip", "espresso")
    assert row.attributes == {"birthday": "1815-12-10", "Favorite Coffee": "Kenya"}


def test_every_bad_row_is_reported_by_line() -> None:
    """Bad addresses, unknown zones, bad locales and long rows each name their line."""
    sheet = parse(
        "email,timezone,locale\n"
        "good@example.com,UTC,en\n"
        "not-an-address,UTC,en\n"
        "x@example.com,Mars/Base,en\n"
        "\n"
        "y@example.com,,english!\n"
        "z@example.com,UTC,en,extra\n"
        '"multi\nline"@example.com,UTC,en\n'
        ",UTC,en\n"
    )
    lines = {p.line: p.message for p in sheet.problems}
    assert set(lines) == {3, 4, 6, 7, 8, 10}
    assert "invalid email address 'not-an-address'" in lines[3]
    assert "unknown time zone 'Mars/Base'" in lines[4]
    assert "bad locale" in lines[6]
    assert "4 cells but the header has 3 columns" in lines[7]
    assert "empty email address" in lines[10]
    assert [r.email for r in sheet.rows] == ["good@example.com"]


def test_duplicates_merge_case_insensitively() -> None:
    """Two rows for one address (any case) become one: later values win, tags unite."""
    sheet = parse(
        "email,first_name,tags,city\n"
        "Bo@Example.com,Bo,a,Paris\n"
        "bo@example.com,,b,\n"
        "BO@EXAMPLE.COM,Bob,,Lyon\n"
    )
    assert sheet.merged == 2
    (row,) = sheet.rows
    assert row.first_name == "Bob"
    assert row.tags == ("a", "b")
    assert row.attributes == {"city": "Lyon"}


def test_header_problems_refuse_the_file() -> None:
    """A missing email column or a duplicate column is a line-1 problem."""
    assert parse("name\nx\n").problems[0].message == "the header row has no 'email' column"
    assert "appears twice" in parse("email,City,city\n").problems[0].message
    assert parse("").problems[0].message.startswith("the file is empty")


def test_computed_columns_of_an_export_are_ignored() -> None:
    """status, purchases and the other computed columns are skipped, never imported."""
    sheet = parse("email,status,purchases,Total_Spent,city\na@example.com,unsubscribed,3,9,Oslo\n")
    assert sheet.problems == []
    assert sheet.ignored_columns == ("status", "purchases", "Total_Spent")
    assert sheet.rows[0].attributes == {"city": "Oslo"}


def test_export_escapes_formula_cells() -> None:
    """Cells starting with = + - @ or a tab are prefixed so spreadsheets show, not run, them."""
    assert escape_cell('=HYPERLINK("http://evil")') == '\'=HYPERLINK("http://evil")'
    assert escape_cell("@SUM(A1)") == "'@SUM(A1)"
    assert escape_cell("+1") == "'+1"
    assert escape_cell("\tx") == "'\tx"
    assert escape_cell("Ada") == "Ada"
    from datetime import UTC, datetime

    customer = Customer(
        id=1,
        email="a@example.com",
        first_name="=cmd|' /C calc'!A0",
        last_name="",
        timezone=None,
        locale=None,
        tags=("vip",),
        attributes={"note": "-2+3"},
        status=Status.SUBSCRIBED,
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    header, row = list(export_rows([customer], ["note"]))
    assert row[header.index("first_name")] == "'=cmd|' /C calc'!A0"
    assert row[header.index("note")] == "'-2+3"

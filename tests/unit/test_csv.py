"""Customer CSV parsing (pure): validation by line, merging, attributes, export escaping."""

from __future__ import annotations

import io

import pytest

from dripper.customers.batches import Batcher
from dripper.customers.csvio import (
    RowProblem,
    SheetReader,
    SheetRow,
    escape_cell,
    export_rows,
    parse_customers,
)
from dripper.customers.lines import LineFlag, Lines, NotUtf8
from dripper.customers.model import Customer, CustomerData, Status


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


def test_names_with_a_line_break_or_control_character_are_refused() -> None:
    """first_name and last_name refuse CR, LF, tab, other Cc characters and U+2028/2029,
    each by line; attributes keep a line break (it is data for a body, not a header)."""
    sheet = parse(
        "email,first_name,last_name,note\n"
        '1@example.com,"Ada\nBcc: x@evil.test",,\n'
        '2@example.com,"Ada\rX",,\n'
        "3@example.com,,Love\tlace,\n"
        "4@example.com,Ada\u2028X,,\n"
        "5@example.com,,Love\u2029lace,\n"
        "6@example.com,Ada\x1b[31m,,\n"
        "7@example.com,Ada\x85X,,\n"
        '8@example.com,Ada,Lovelace,"two\nlines"\n'
        "9@example.com, Ada ,,\n"
    )
    lines = {p.line: p.message for p in sheet.problems}
    assert set(lines) == {2, 4, 6, 7, 8, 9, 10}  # rows 1 and 2 span two lines each
    assert lines[2].startswith("first_name contains a line break (U+000A)")
    assert "To: header" in lines[2]
    assert lines[4].startswith("first_name contains a line break (U+000D)")
    assert lines[6].startswith("last_name contains a tab (U+0009)")
    assert lines[7].startswith("first_name contains a line break (U+2028)")
    assert lines[8].startswith("last_name contains a line break (U+2029)")
    assert lines[9].startswith("first_name contains a control character (U+001B)")
    assert lines[10].startswith("first_name contains a line break (U+0085)")
    assert {r.email: r.attributes.get("note") for r in sheet.rows} == {
        "8@example.com": "two\nlines",
        "9@example.com": None,
    }


def test_a_nul_anywhere_refuses_its_row_or_the_header() -> None:
    """A NUL in any cell makes its row bad (by the line the row starts on); in the header
    it refuses the file."""
    sheet = parse(
        "email,first_name,note\n"
        "a@example.com,Ada,ok\n"
        "b@example.com,B\x00b,\n"
        'c@example.com,,"multi\nline \x00"\n'
        "d@example.com,,x\x00\n"
        "e@example.com,,fine\n"
    )
    assert [(p.line, p.message) for p in sheet.problems] == [
        (3, "a cell contains a NUL character (\\x00): remove it and import again"),
        (4, "a cell contains a NUL character (\\x00): remove it and import again"),
        (6, "a cell contains a NUL character (\\x00): remove it and import again"),
    ]
    assert [r.email for r in sheet.rows] == ["a@example.com", "e@example.com"]
    header = parse("email,no\x00te\na@example.com,x\n")
    assert [(p.line, p.message) for p in header.problems] == [
        (1, "header row: a cell contains a NUL character (\\x00): remove it and import again")
    ]
    assert header.rows == []


def test_lines_are_cut_in_bounded_blocks() -> None:
    """Line breaks of every kind survive block boundaries (a \\r\\n split between two
    blocks is one break); a line over the limit is dropped, flagged, and numbered."""
    data = b"\xef\xbb\xbfh1\r\nab\rcd\n" + b"x" * 50 + b"\r\nlast"
    for block in (1, 2, 3, 7, 64):
        lines = Lines(io.BytesIO(data), max_line=20, block=block)
        assert list(lines) == ["h1\r\n", "ab\r", "cd\n", "\n", "last"], block
        assert lines.flags == [LineFlag(4, lines.flags[0].message)]
        assert "more than the limit" in lines.flags[0].message
        assert lines.line == 5
        assert lines.consumed == len(data)


def test_a_huge_line_is_never_held_whole() -> None:
    """A 64 MiB line without a line break is read block by block and skipped: what is
    held at any time stays near the 1 MiB limit, and its row is refused by line."""
    held: list[int] = []

    class Source(io.RawIOBase):
        """A header, then 64 MiB of 'x', then a good row; records the largest read."""

        def __init__(self) -> None:
            self.parts = [b"email,note\n", *([b"x" * (1 << 20)] * 64), b"\nok@example.com,n\n"]
            self.offset = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            if not self.parts:
                return b""
            chunk = self.parts[0][self.offset : self.offset + size]
            self.offset += len(chunk)
            if self.offset == len(self.parts[0]):
                self.parts.pop(0)
                self.offset = 0
            held.append(len(chunk))
            return chunk

    import tracemalloc

    tracemalloc.start()
    try:
        sheet = SheetReader(Source())  # type: ignore[arg-type]
        items = list(sheet)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert max(held) <= 1 << 16
    assert [(p.line, p.message) for p in items if isinstance(p, RowProblem)] == [
        (2, "a line of more than 1 MiB: not a customer row (is this the file you meant?)")
    ]
    assert [r.data.email for r in items if isinstance(r, SheetRow)] == ["ok@example.com"]


def test_the_reader_streams_rows_without_reading_ahead() -> None:
    """Rows come one at a time from the file: after the first row of a 10,000-row sheet
    only the first block of the file has been read."""
    text = "email,city\n" + "".join(f"c{i}@example.com,Oslo\n" for i in range(10_000))
    raw = io.BytesIO(text.encode())
    sheet = SheetReader(raw)
    rows = iter(sheet)
    first = next(rows)
    assert isinstance(first, SheetRow)
    assert (first.line, first.data.email) == (2, "c0@example.com")
    assert sheet.lines.consumed <= 1 << 16 < len(text)
    assert sum(1 for _ in rows) == 9_999


def test_a_line_that_is_not_utf8_names_its_line() -> None:
    """Bytes that are not UTF-8 raise NotUtf8 (a UnicodeDecodeError) with the line number."""
    raw = io.BytesIO("email,name\na@example.com,Zoë\n".encode() + b"b@example.com,Zo\xeb\n")
    with pytest.raises(UnicodeDecodeError) as raised:
        list(SheetReader(raw))
    assert isinstance(raised.value, NotUtf8)
    assert raised.value.line == 3


def test_batches_merge_duplicates_like_one_sheet() -> None:
    """The batcher merges duplicates within a batch and marks those of earlier batches
    `again` (with whether tags were given), so the store can merge them the same way; a
    batch ends at its size in addresses or in bytes of the file, whichever comes first."""
    batcher = Batcher(size=2)
    a1 = CustomerData(email="a@example.com", first_name="A", tags=("x",))
    b1 = CustomerData(email="b@example.com")
    a2 = CustomerData(email="a@example.com", tags=("y",))
    c1 = CustomerData(email="c@example.com")
    b2 = CustomerData(email="b@example.com", tags=("z",))
    assert batcher.add(a1) is None
    first = batcher.add(b1)
    assert first is not None
    assert (first.rows, first.again) == ([a1, b1], {})
    assert batcher.add(a2) is None
    second = batcher.add(c1)
    assert second is not None
    assert (second.rows, second.again) == ([a2, c1], {"a@example.com": True})
    assert batcher.add(b2) is None
    assert batcher.add(b2.merged_with(CustomerData(email="b@example.com", first_name="B"))) is None
    last = batcher.flush()
    assert last is not None
    assert last.again == {"b@example.com": False}
    assert last.rows == [CustomerData(email="b@example.com", first_name="B", tags=("z",))]
    assert batcher.flush() is None
    by_size = Batcher(size=100, max_bytes=1000)
    assert by_size.add(a1, 600) is None
    bounded = by_size.add(b1, 1000)  # 1,000 bytes of the file read: the batch is done
    assert bounded is not None
    assert bounded.rows == [a1, b1]


def test_builtin_names_are_what_the_context_adds_to_the_attributes() -> None:
    """BUILTIN_NAMES (the names an import never checks as date columns) are exactly the
    names `Customer.as_context` sets over the attributes."""
    from datetime import UTC, datetime

    from dripper.customers.model import BUILTIN_NAMES

    customer = Customer(
        id=1,
        email="a@example.com",
        first_name="",
        last_name="",
        timezone=None,
        locale=None,
        tags=(),
        attributes={},
        status=Status.SUBSCRIBED,
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert set(customer.as_context()) == BUILTIN_NAMES

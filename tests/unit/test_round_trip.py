"""`customers export` then `customers import` gives back the same customers (DESIGN 14):
every field and attribute, on generated customers whose values start with what a
spreadsheet would run as a formula (escaped on the way out, unescaped on the way in)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.customers.csvio import export_rows, parse_customers, write_csv
from dripper.customers.model import CustomerData, Status
from dripper.store import open_store

NOW = datetime(2027, 1, 4, tzinfo=UTC)
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo"]
LOCALES = ["en", "de-AT", "pt-BR", "ja"]

# One line of text as a cell holds it: no surrounding space (cells are trimmed), no line
# break or control character (names refuse them), maybe a formula's first character.
_letters = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs"), exclude_characters=";"
)
_text = st.builds(
    lambda head, body: head + body,
    st.sampled_from(["", "=", "+", "-", "@", "'", "'=", "+34 "]),
    st.text(_letters, min_size=1, max_size=12),
)
_attr_name = st.sampled_from(["phone", "city", "favorite_coffee", "note"])


@st.composite
def customers(draw: st.DrawFn) -> list[CustomerData]:
    count = draw(st.integers(1, 8))
    found = []
    for n in range(count):
        found.append(
            CustomerData(
                email=f"c{n}@example.com",
                first_name=draw(_text),
                last_name=draw(_text),
                timezone=draw(st.sampled_from(ZONES)),
                locale=draw(st.sampled_from(LOCALES)),
                tags=tuple(dict.fromkeys(draw(st.lists(_text, max_size=3)))),
                attributes=draw(st.dictionaries(_attr_name, _text, max_size=3)),
                marketing=draw(st.sampled_from(list(Status))),
            )
        )
    return found


def _fields(store_url: str) -> dict[str, tuple[object, ...]]:
    store = open_store(store_url)
    try:
        return {
            c.email: (
                c.first_name,
                c.last_name,
                c.timezone,
                c.locale,
                c.tags,
                dict(c.attributes),
                c.status,
            )
            for c in store.iter_customers()
        }
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(customers())
def test_export_then_import_is_lossless(people: list[CustomerData]) -> None:
    """A sheet read in, exported and read into an empty database: the same fields and
    attributes as generated, whatever the cells held."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="round-trip-"))
    first, second = f"sqlite:///{folder / 'a.db'}", f"sqlite:///{folder / 'b.db'}"
    names = sorted({k for p in people for k in p.attributes})
    header = ["email", "first_name", "last_name", "timezone", "locale", "tags", "marketing"]
    rows = [header + names]
    for p in people:
        rows.append(
            [p.email, p.first_name or "", p.last_name or "", p.timezone or "", p.locale or "",
             ";".join(p.tags or ()), p.marketing.value if p.marketing else ""]
            + [p.attributes.get(n, "") for n in names]
        )  # fmt: skip
    sheet = io.StringIO()
    store = open_store(first)
    try:
        store.ensure_schema()
        parsed = parse_customers(io.StringIO(_csv(rows)))
        assert not parsed.problems, parsed.problems
        store.upsert_customers(parsed.rows, now=NOW)
        write_csv(sheet, export_rows(store.iter_customers(), names))
    finally:
        store.close()
    back = parse_customers(io.StringIO(sheet.getvalue()))
    assert not back.problems, back.problems
    store = open_store(second)
    try:
        store.ensure_schema()
        store.upsert_customers(back.rows, now=NOW)
    finally:
        store.close()
    generated = {
        p.email: (
            p.first_name or "",
            p.last_name or "",
            p.timezone,
            p.locale,
            p.tags or (),
            dict(p.attributes),
            p.marketing or Status.SUBSCRIBED,
        )
        for p in people
    }
    assert _fields(first) == generated
    assert _fields(second) == generated


def _csv(rows: list[list[str]]) -> str:
    """Rows as dripper writes them: a formula's first character (or an apostrophe) escaped."""
    from dripper.customers.csvio import escape_cell

    out = io.StringIO()
    write_csv(out, [[escape_cell(cell) for cell in row] for row in rows])
    return out.getvalue()

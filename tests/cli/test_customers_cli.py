"""`dripper customers ...` and `dripper event` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

from dripper.customers.batches import BATCH
from tests.cli.conftest import Project


def show(project: Project, email: str) -> dict:  # type: ignore[type-arg]
    result = project.run("customers", "show", email, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_import_the_sample_customers(project: Project) -> None:
    """The scaffolded sample sheet imports cleanly and the summary counts it."""
    result = project.run("customers", "import", "customers.csv")
    assert result.exit_code == 0, result.output
    assert "7 row(s): 7 new, 0 updated" in result.stdout
    again = project.run("customers", "import", "customers.csv", "--json")
    assert json.loads(again.stdout)["updated"] == 7
    ada = show(project, "ADA@example.com")["customer"]
    assert ada["first_name"] == "Ada"
    assert ada["attributes"]["favorite_coffee"] == "Ethiopia Yirgacheffe"


def test_a_file_with_a_bad_row_imports_nothing(project: Project) -> None:
    """Every bad row is reported by line; nothing is written; exit 2; --skip-invalid imports
    the good rows."""
    project.write(
        "bad.csv",
        "email,timezone\ngood@example.com,UTC\nnope,UTC\nalso@example.com,Nowhere/Land\n",
    )
    result = project.run("customers", "import", "bad.csv")
    assert result.exit_code == 2
    assert "bad.csv:3: invalid email address 'nope'" in result.stderr
    assert "bad.csv:4: unknown time zone 'Nowhere/Land'" in result.stderr
    assert "2 bad row(s); nothing imported" in result.stderr
    assert "Traceback" not in result.output
    assert project.run("customers", "show", "good@example.com").exit_code == 2
    skipped = project.run("customers", "import", "bad.csv", "--skip-invalid")
    assert skipped.exit_code == 0
    assert "1 new" in skipped.stdout
    assert show(project, "good@example.com")["customer"]["timezone"] == "UTC"


def test_purchase_events_update_derived_fields(project: Project) -> None:
    """`dripper event purchase` creates the customer and counts purchases and spend."""
    first = project.run(
        "--now",
        "2027-01-04T10:00:00Z",
        "event",
        "purchase",
        "New@Example.com",
        "--data",
        '{"amount": 24.5}',
    )
    assert first.exit_code == 0, first.output
    assert "purchases: 1, total spent: 24.50" in first.stdout
    project.run(
        "event",
        "purchase",
        "new@example.com",
        "--data",
        '{"amount": "10.25"}',
        "--at",
        "2027-01-02T09:00:00Z",
    )
    customer = show(project, "new@example.com")["customer"]
    assert customer["purchases"] == 2
    assert customer["total_spent"] == "34.75"
    assert customer["first_purchase_at"].startswith("2027-01-02T09:00:00")
    assert customer["last_purchase_at"].startswith("2027-01-04T10:00:00")


def test_bad_event_input_is_one_line_and_exit_2(project: Project) -> None:
    """Bad JSON, a non-object, a bad address, a bad time or amount: exit 2, no traceback."""
    cases = [
        (["event", "purchase", "a@example.com", "--data", "{oops"], "--data: not valid JSON"),
        (["event", "purchase", "a@example.com", "--data", "[1]"], "expected a JSON object"),
        (["event", "purchase", "not-an-address"], "invalid email address"),
        (["event", "purchase", "a@example.com", "--at", "soon"], "--at: bad time"),
        (["event", "Bad Type", "a@example.com"], "bad event type"),
        (["event", "purchase", "a@example.com", "--data", '{"amount": "lots"}'], "amount"),
    ]
    for args, message in cases:
        result = project.run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_unsubscribe_and_forget_survive_reimport(project: Project) -> None:
    """An unsubscribed or forgotten address stays unsubscribed when imported again."""
    assert project.run("customers", "import", "customers.csv").exit_code == 0
    assert project.run("customers", "unsubscribe", "grace@example.com").exit_code == 0
    forgot = project.run("customers", "forget", "ada@example.com", "--yes")
    assert forgot.exit_code == 0, forgot.output
    assert project.run("customers", "show", "ada@example.com").exit_code == 2
    again = project.run("customers", "import", "customers.csv", "--json")
    assert json.loads(again.stdout)["kept_suppressed"] == 2
    assert show(project, "grace@example.com")["customer"]["status"] == "unsubscribed"
    assert show(project, "ada@example.com")["customer"]["status"] == "unsubscribed"


def test_forget_needs_confirmation_in_a_pipe(project: Project) -> None:
    """Without --yes and without a terminal, forget refuses and erases nothing."""
    project.run("customers", "import", "customers.csv")
    result = project.run("customers", "forget", "ada@example.com")
    assert result.exit_code == 2
    assert "add --yes" in result.stderr
    assert show(project, "ada@example.com")["customer"]["email"] == "ada@example.com"


def test_add_then_export_round_trip(project: Project) -> None:
    """`add` validates like import; `export` escapes formula cells and imports back."""
    bad = project.run("customers", "add", "x@example.com", "--timezone", "Moon/Base")
    assert bad.exit_code == 2
    assert "unknown time zone" in bad.stderr
    added = project.run(
        "customers",
        "add",
        "Evil@Example.com",
        "--first-name",
        "=1+2",
        "--tag",
        "vip",
        "--attr",
        "city=Oslo",
    )
    assert added.exit_code == 0, added.output
    exported = project.run("customers", "export")
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows[0]["email"] == "evil@example.com"
    assert rows[0]["first_name"] == "'=1+2"
    assert rows[0]["city"] == "Oslo"
    assert rows[0]["tags"] == "vip"
    out = project.root / "export.csv"
    assert project.run("customers", "export", "-o", str(out)).exit_code == 0
    back = project.run("customers", "import", str(out))
    assert back.exit_code == 0, back.output
    assert "1 updated" in back.stdout
    assert "ignoring column(s) dripper computes itself" in back.stderr


def test_db_upgrade_is_idempotent(project: Project) -> None:
    """`dripper db upgrade` creates the schema, then reports it up to date."""
    first = project.run("db", "upgrade")
    assert first.exit_code == 0, first.output
    second = project.run("db", "upgrade")
    assert "up to date" in second.stdout


def test_a_name_with_a_line_break_is_refused_at_import_and_add(project: Project) -> None:
    """A line break or control character in first_name/last_name (it would end up in the
    To: header) is a bad row by line at import, and bad input at `add`; nothing is written."""
    project.write(
        "names.csv",
        "email,first_name,last_name,note\n"
        'a@example.com,"Ada\nBcc: all@example.com",Lovelace,\n'
        "b@example.com,Grace,Hop\u2028per,\n"
        "c@example.com,Linus,Tor\tvalds,\n"
        'd@example.com,Sam,,"a note\non two lines"\n',
    )
    result = project.run("customers", "import", "names.csv")
    assert result.exit_code == 2, result.output
    assert "names.csv:2: first_name contains a line break (U+000A)" in result.stderr
    assert "names.csv:4: last_name contains a line break (U+2028)" in result.stderr
    assert "names.csv:5: last_name contains a tab (U+0009)" in result.stderr
    assert "3 bad row(s); nothing imported" in result.stderr
    assert project.run("customers", "show", "d@example.com").exit_code == 2
    skipped = project.run("customers", "import", "names.csv", "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert show(project, "d@example.com")["customer"]["attributes"]["note"] == (
        "a note\non two lines"
    )
    for option, value in (("--first-name", "Ada\r\nX"), ("--last-name", "Love\x0blace")):
        added = project.run("customers", "add", "e@example.com", option, value)
        assert added.exit_code == 2, added.output
        assert "contains a line break" in added.stderr
        assert "Traceback" not in added.output
    assert project.run("customers", "show", "e@example.com").exit_code == 2


def test_a_nul_in_any_cell_is_a_bad_row(project: Project) -> None:
    """A NUL in a cell is a bad row by line on both databases (PostgreSQL cannot store it:
    no DataError, no SQL, no internal error); in the header it refuses the file."""
    project.write(
        "nul.csv",
        "email,first_name,note\n"
        "good@example.com,Ada,fine\n"
        "attr@example.com,Bo,bad\x00note\n"
        "name@example.com,B\x00b,\n",
    )
    result = project.run("customers", "import", "nul.csv")
    assert result.exit_code == 2, result.output
    assert "nul.csv:3: a cell contains a NUL character" in result.stderr
    assert "nul.csv:4: a cell contains a NUL character" in result.stderr
    assert "internal error" not in result.output
    assert "Traceback" not in result.output
    assert project.run("customers", "show", "good@example.com").exit_code == 2
    skipped = project.run("customers", "import", "nul.csv", "--skip-invalid", "--json")
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["bad_rows_skipped"] == 2
    assert show(project, "good@example.com")["customer"]["attributes"] == {"note": "fine"}
    project.write("nulhead.csv", "email,no\x00te\nx@example.com,1\n")
    header = project.run("customers", "import", "nulhead.csv", "--skip-invalid")
    assert header.exit_code == 2, header.output
    assert "nulhead.csv:1: header row: a cell contains a NUL character" in header.stderr
    assert project.run("customers", "show", "x@example.com").exit_code == 2


def test_dates_a_date_trigger_cannot_read_are_warned_at_import(project: Project) -> None:
    """Each birthday the scaffolded birthday campaign cannot read is named (address and
    line, the first five) and counted in one warning; the customers are still imported."""
    bad = ["1990-02-30", "1990-02-29", "31/12/1990", "1990-13-01", "soon", "1990/01/01", "x"]
    rows = [f"c{i}@example.com,{value}\n" for i, value in enumerate(bad)]
    project.write(
        "birthdays.csv",
        "email,birthday\n" + "".join(rows) + "good@example.com,1992-02-29\nnone@example.com,\n",
    )
    result = project.run("customers", "import", "birthdays.csv")
    assert result.exit_code == 0, result.output
    assert "9 new" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    (warning,) = warnings
    assert warning.startswith(
        "warning: 7 customer(s) have a 'birthday' that is not a date, "
        "so campaigns birthday-card and birthday never enroll them: "
        "c0@example.com (line 2): '1990-02-30'"
    )
    assert "c1@example.com (line 3): '1990-02-29' is not a date" in warning
    assert "c2@example.com (line 4): '31/12/1990' is not a date (use YYYY-MM-DD)" in warning
    assert "c5@example.com" not in warning
    assert warning.endswith("; and 2 more")
    assert show(project, "c0@example.com")["customer"]["attributes"]["birthday"] == "1990-02-30"
    clean = project.run("customers", "import", "customers.csv")
    assert clean.exit_code == 0, clean.output
    assert "warning" not in clean.stderr


def _filler(start: int, count: int) -> str:
    return "".join(f"f{i}@example.com,F{i},,,\n" for i in range(start, start + count))


def test_a_bad_last_row_of_a_large_file_leaves_the_database_untouched(project: Project) -> None:
    """Rows are written while the file is read, yet a bad row at the very end of a file of
    thousands (two write batches) leaves nothing: not the new rows, not the updates."""
    assert (
        project.run("customers", "add", "keep@example.com", "--first-name", "Keep").exit_code == 0
    )
    project.write(
        "late.csv",
        "email,first_name,last_name,tags,city\n"
        "keep@example.com,Changed,,new,Oslo\n"
        + _filler(0, 2 * BATCH + 100)
        + "not-an-address,X,,,\n",
    )
    result = project.run("customers", "import", "late.csv")
    assert result.exit_code == 2, result.output
    bad_line = 2 * BATCH + 103
    assert f"late.csv:{bad_line}: invalid email address 'not-an-address'" in result.stderr
    assert "1 bad row(s); nothing imported" in result.stderr
    exported = project.run("customers", "export")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["email"], r["first_name"], r["tags"]) for r in rows] == [
        ("keep@example.com", "Keep", "")
    ]
    assert "city" not in rows[0]


def test_duplicates_across_write_batches_merge_as_in_one_sheet(project: Project) -> None:
    """Duplicates more than a write batch apart merge exactly as when the whole file was
    merged in memory: later values win, tags are united (replacing the stored ones), a
    row without tags keeps them, and each address is counted once."""
    assert project.run("customers", "import", "customers.csv").exit_code == 0  # 7 customers
    assert project.run("customers", "unsubscribe", "grace@example.com").exit_code == 0
    project.write(
        "dups.csv",
        "email,first_name,last_name,tags,city\n"
        "Ada@Example.com,Bo,,a,Paris\n"  # line 2
        "hiro@example.com,Hiro\n"  # a short row: no tags given
        "grace@example.com,G,,,\n"
        + _filler(0, BATCH + 200)
        + "ada@example.com,,,b,\n"
        + "f5@example.com,,Five,x,\n"
        + "grace@example.com,,H,,\n"
        + _filler(BATCH + 200, BATCH + 200)
        + "ADA@EXAMPLE.COM,Bob,,,Lyon\n"
        + "hiro@example.com,,,fresh,\n"
        + "f5@example.com,,,y;x,\n",
    )
    result = project.run("customers", "import", "dups.csv", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 * (BATCH + 200) + 9
    assert (summary["inserted"], summary["updated"]) == (2 * (BATCH + 200), 3)
    assert summary["merged_duplicates"] == 6
    assert summary["kept_suppressed"] == 1
    ada = show(project, "ada@example.com")["customer"]
    assert (ada["first_name"], ada["last_name"]) == ("Bob", "Lovelace")
    assert ada["tags"] == ["a", "b"]
    assert ada["attributes"]["city"] == "Lyon"
    assert ada["attributes"]["favorite_coffee"] == "Ethiopia Yirgacheffe"
    hiro = show(project, "hiro@example.com")["customer"]  # was tagged "filter"
    assert (hiro["first_name"], hiro["tags"]) == ("Hiro", ["fresh"])
    grace = show(project, "grace@example.com")["customer"]
    assert (grace["first_name"], grace["last_name"], grace["tags"]) == ("G", "H", [])
    assert grace["status"] == "unsubscribed"
    five = show(project, "f5@example.com")["customer"]
    assert (five["first_name"], five["last_name"], five["tags"]) == ("F5", "Five", ["x", "y"])

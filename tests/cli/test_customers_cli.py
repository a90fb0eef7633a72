"""`dripper customers ...` and `dripper event` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

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

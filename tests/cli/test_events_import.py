"""`dripper events import FILE.csv` and `dripper event --id`, end to end on SQLite and
PostgreSQL (DESIGN 12): history enrolls nobody, all or nothing, idempotent by id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import enrollments, events, outbox
from tests.cli.conftest import Project

NOW = "2027-01-04T15:00:00Z"
NOW_AT = datetime(2027, 1, 4, 15, tzinfo=UTC)
HISTORY = """type,email,at,id,amount,currency,product
purchase,ada@example.com,2024-03-01T10:00:00Z,shop:1,24.50,,Kenya AA
purchase,Ada@Example.com,2025-05-01T10:00:00Z,shop:2,30.00,,Guji
purchase,zoe@example.com,2025-01-01T10:00:00Z,shop:3,31.90,EUR,Huila
purchase,bob@example.com,2026-01-01T10:00:00Z,shop:4,10,usd,
refund,ada@example.com,2025-06-01T10:00:00Z,shop:r1,5,,
"""


def show(project: Project, email: str) -> dict[str, Any]:
    result = project.run("customers", "show", email, "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)["customer"]
    return found


def counts(project: Project) -> tuple[int, int, int]:
    url = project.root.joinpath("config.toml").read_text().split('url = "', 1)[1].split('"')[0]
    store = open_store(url)
    try:
        with store.reading() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one(),
            )
    finally:
        store.close()


def test_history_updates_customers_and_enrolls_nobody(project: Project) -> None:
    """Without --enroll three years of orders update purchases, spend (company currency
    only, refunds taken off), first and last purchase and the percentiles, and enroll
    nobody: not one thank-you is planned."""
    project.write("orders.csv", HISTORY)
    result = project.run("--now", NOW, "events", "import", "orders.csv", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recorded"] == 5
    assert summary["duplicates"] == 0
    assert summary["history"]
    assert counts(project) == (5, 0, 0)
    ada = show(project, "ada@example.com")
    assert (ada["purchases"], ada["total_spent"]) == (2, "49.50")
    assert ada["first_purchase_at"].startswith("2024-03-01")
    assert ada["last_purchase_at"].startswith("2025-05-01")
    zoe = show(project, "zoe@example.com")
    assert (zoe["purchases"], zoe["total_spent"]) == (1, "0.00")  # EUR: kept apart
    assert ada["spend_rank"] == 1
    assert ada["spend_percentile"] == 100


def test_importing_the_same_file_again_records_nothing(project: Project) -> None:
    """Rows with ids are recorded once: a second import is all duplicates and changes no
    customer."""
    project.write("orders.csv", HISTORY)
    assert project.run("--now", NOW, "events", "import", "orders.csv").exit_code == 0
    again = project.run("--now", NOW, "events", "import", "orders.csv")
    assert again.exit_code == 0, again.output
    assert "0 event(s) recorded, 5 duplicate(s)" in again.stdout
    assert counts(project) == (5, 0, 0)
    assert show(project, "ada@example.com")["total_spent"] == "49.50"


def test_a_bad_row_imports_nothing_and_every_bad_row_is_named(project: Project) -> None:
    """One bad row and nothing of the file is recorded; each bad row is listed by line,
    with what is wrong (address, time, id, currency, refund amount, type); exit 2;
    --skip-invalid records the good rows."""
    project.write(
        "orders.csv",
        "type,email,at,id,amount,currency\n"
        "purchase,good@example.com,2025-01-01T00:00:00Z,g1,5,\n"
        "purchase,nope,2025-01-01T00:00:00Z,g2,5,\n"
        "purchase,a@example.com,yesterday,g3,5,\n"
        f"purchase,a@example.com,2025-01-01T00:00:00Z,{'x' * 201},5,\n"
        "purchase,a@example.com,2025-01-01T00:00:00Z,g5,5,XYZ\n"
        "refund,a@example.com,2025-01-01T00:00:00Z,g6,0,\n"
        "Purchase,a@example.com,2025-01-01T00:00:00Z,g7,5,\n",
    )
    result = project.run("--now", NOW, "events", "import", "orders.csv")
    assert result.exit_code == 2
    err = result.stderr
    assert "orders.csv:3: invalid email address 'nope'" in err
    assert "orders.csv:4: at: " in err
    assert "orders.csv:5: id: 201 characters" in err
    assert "orders.csv:6: data.currency: 'XYZ' is not an ISO 4217" in err
    assert "orders.csv:7: data.amount: a refund needs the money returned" in err
    assert "orders.csv:8: type 'Purchase'" in err
    assert "6 bad row(s); nothing imported" in err
    assert "Traceback" not in result.output
    assert counts(project) == (0, 0, 0)
    skipped = project.run("--now", NOW, "events", "import", "orders.csv", "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert "1 event(s) recorded" in skipped.stdout
    assert counts(project)[0] == 1


def test_a_bad_header_refuses_the_file(project: Project) -> None:
    """A file without the required columns is refused at the header, whatever the flag."""
    project.write("orders.csv", "email,amount\na@example.com,5\n")
    result = project.run("events", "import", "orders.csv", "--skip-invalid")
    assert result.exit_code == 2
    assert "orders.csv:1: the header row has no 'type', 'at' column" in result.stderr
    assert counts(project) == (0, 0, 0)


def test_enroll_plans_the_events_as_dripper_event_does(project: Project) -> None:
    """With --enroll the events are planned: a first purchase enrolls in the welcome
    sequence, a second one of the same customer (in the same file) converts it."""
    project.write(
        "orders.csv",
        "type,email,at,id,amount\n"
        "purchase,ada@example.com,2027-01-04T10:00:00Z,o1,24.50\n"
        "purchase,ada@example.com,2027-01-04T12:00:00Z,o2,10\n",
    )
    result = project.run("--now", NOW, "events", "import", "orders.csv", "--enroll", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recorded"] == 2
    assert not summary["history"]
    assert summary["enrolled"] >= 1
    sheet = project.run("customers", "show", "ada@example.com", "--json")
    timeline = json.loads(sheet.stdout)
    welcome = [e for e in timeline["enrollments"] if e["campaign"] == "welcome"]
    assert len(welcome) == 1
    assert welcome[0]["status"] == "converted"


def test_event_with_an_id_is_recorded_once(project: Project) -> None:
    """`dripper event --id`: the second time says it is a duplicate and changes nothing."""
    args = ["--now", NOW, "event", "purchase", "ada@example.com", "--id", "shopify:order:1"]
    first = project.run(*args, "--data", '{"amount": 24.5}')
    assert first.exit_code == 0, first.output
    again = project.run(*args, "--data", '{"amount": 24.5}')
    assert again.exit_code == 0, again.output
    assert "duplicate: purchase shopify:order:1 was recorded before; nothing changed" in (
        again.stdout
    )
    assert show(project, "ada@example.com")["purchases"] == 1
    too_long = project.run("event", "purchase", "ada@example.com", "--id", "x" * 201)
    assert too_long.exit_code == 2
    assert "--id: 201 characters" in too_long.stderr


def test_a_refund_larger_than_spent_is_clamped_and_said(project: Project) -> None:
    """A refund of more than was spent leaves total_spent at 0 and warns; exit 0."""
    project.run("--now", NOW, "event", "purchase", "a@example.com", "--data", '{"amount": 10}')
    result = project.run(
        "--now", NOW, "event", "refund", "a@example.com", "--data", '{"amount": 25}'
    )
    assert result.exit_code == 0, result.output
    assert "refund of 25.00 USD is more than the 10.00 USD spent: total_spent is 0" in (
        result.stderr
    )
    assert show(project, "a@example.com")["total_spent"] == "0.00"


def test_a_history_refund_of_an_unknown_order_is_said_and_over_refunds_are_clamped(
    project: Project,
) -> None:
    """In an order history, a refund naming an order its customer never bought warns (by
    order) and still lowers total_spent; one taking a customer below 0 leaves 0 and warns;
    a refund of an order in the file, or recorded before, says nothing."""
    project.run("--now", NOW, "event", "purchase", "b@example.com", "--id", "shop:9",
                "--data", '{"amount": 8}')  # fmt: skip
    project.write(
        "orders.csv",
        "type,email,at,id,amount,order\n"
        "purchase,a@example.com,2025-01-01T10:00:00Z,shop:1,20,\n"
        "refund,a@example.com,2025-02-01T10:00:00Z,shop:r1,5,shop:1\n"
        "refund,a@example.com,2025-03-01T10:00:00Z,shop:r2,4,shop:404\n"
        "refund,b@example.com,2025-03-01T10:00:00Z,shop:r3,3,shop:9\n"
        "refund,b@example.com,2025-04-01T10:00:00Z,shop:r4,30,shop:9\n",
    )
    result = project.run("--now", NOW, "events", "import", "orders.csv")
    assert result.exit_code == 0, result.output
    unmatched = [line for line in result.stderr.splitlines() if "no purchase with that id" in line]
    assert len(unmatched) == 1
    assert "1 refund(s)" in unmatched[0]
    assert "'shop:404'" in unmatched[0]
    assert "refunded more than they spent (b@example.com)" in result.stderr
    assert show(project, "a@example.com")["total_spent"] == "11.00"  # 20 - 5 - 4
    assert show(project, "b@example.com")["total_spent"] == "0.00"


def test_no_copy_of_a_history_file_stays_on_the_connection(project: Project) -> None:
    """After an order history is written, its stage tables are gone: on SQLite a
    temporary table would live as long as the connection (forget promises no copy)."""
    from dripper.store.history import STAGE, SUMS, HistoryLoad

    project.write("orders.csv", HISTORY)
    url = project.root.joinpath("config.toml").read_text().split('url = "', 1)[1].split('"')[0]
    store = open_store(url)
    store.ensure_schema()
    try:
        with store.transaction() as conn:
            load = store.history_load(conn, now=NOW_AT, currency="USD")
            assert isinstance(load, HistoryLoad)
            from dripper.eventdata import NewEvent

            load.add(NewEvent("c@example.com", "signup", NOW_AT, {}, None), None)
            load.finish()
            if store.dialect == "sqlite":
                left = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_temp_master WHERE type = 'table'"
                ).scalars()
                assert not {STAGE, SUMS} & set(left)
        with store.reading() as conn:
            if store.dialect == "postgresql":
                left = conn.exec_driver_sql(
                    "SELECT relname FROM pg_class WHERE relpersistence = 't'"
                ).scalars()
                assert not {STAGE, SUMS, "_history_kept"} & set(left)
    finally:
        store.close()


def test_stats_take_refunds_off_and_keep_other_currencies_apart(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converting purchase's refund lowers the step's revenue and shows as `refunds`; a
    conversion in euros is `revenue_other`, never added to the dollars."""
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-0123456789abcdefghij")

    def event(*args: str) -> None:
        result = project.run("--now", NOW, "event", *args)
        assert result.exit_code == 0, result.output

    event("purchase", "ada@example.com", "--id", "o1", "--data", '{"amount": 20}')
    event("purchase", "zoe@example.com", "--id", "o2", "--data", '{"amount": 20}')
    sent = project.run("--now", NOW, "run", "--once")
    assert sent.exit_code == 0, sent.output
    event("purchase", "ada@example.com", "--id", "o3", "--data", '{"amount": "30.00"}')
    event("refund", "ada@example.com", "--data", '{"amount": "10", "order": "o3"}')
    event(
        "purchase",
        "zoe@example.com",
        "--id",
        "o4",
        "--data",
        '{"amount": "31.90", "currency": "EUR"}',
    )
    result = project.run("--now", NOW, "stats", "welcome", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["currency"] == "USD"
    (welcome,) = report["campaigns"]
    thanks = next(s for s in welcome["steps"] if s["step"] == "thank-you")
    assert thanks["conversions"] == 2
    assert (thanks["revenue"], thanks["refunds"], thanks["revenue_other"]) == (
        20.0,
        10.0,
        {"EUR": 31.9},
    )
    table = project.run("--now", NOW, "stats", "welcome")
    assert "refunds of 10.00 USD already taken off; not added in: 31.90 EUR" in table.stdout

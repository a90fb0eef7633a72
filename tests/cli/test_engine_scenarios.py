"""The drip engine end to end through the CLI with --now, on SQLite and PostgreSQL: what is
sent, when, and what is not."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

import pytest

from tests.cli.conftest import Project

SHEET = (
    "email,first_name,timezone,birthday\n"
    "ada@example.com,Ada,Europe/London,1990-03-10\n"
    "hiro@example.com,Hiro,Asia/Tokyo,\n"
)


@pytest.fixture
def shop(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The scaffolded project with two customers imported on 2027-01-02."""
    monkeypatch.setenv("DRIPPER_SECRET", "scenario-secret-0123456789")
    project.write("people.csv", SHEET)
    result = project.run("--now", "2027-01-02T12:00:00Z", "customers", "import", "people.csv")
    assert result.exit_code == 0, result.output
    return project


def run_once(project: Project, now: str) -> dict[str, Any]:
    result = project.run("--now", now, "run", "--once", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def sent(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(d["to"], d["campaign"], d["step"]) for d in report["deliveries"]]


def event(project: Project, now: str, kind: str, address: str, data: str = "{}") -> None:
    result = project.run("--now", now, "event", kind, address, "--data", data)
    assert result.exit_code == 0, result.output


def sends_of(project: Project, address: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The customer's sends by (campaign, step); the first occurrence of each."""
    result = project.run("customers", "show", address, "--json")
    assert result.exit_code == 0, result.output
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for send in json.loads(result.stdout)["sends"]:
        found.setdefault((send["campaign"], send["step"]), send)
    return found


def enrollments_of(project: Project, address: str) -> dict[str, dict[str, Any]]:
    result = project.run("customers", "show", address, "--json")
    return {e["campaign"]: e for e in json.loads(result.stdout)["enrollments"]}


def eml(project: Project, message_id: str) -> email.message.EmailMessage:
    path = project.root / "outbox" / f"{message_id.replace('@', '_')}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_thank_you_at_once_and_offer_on_day_14_at_ten_local(shop: Project) -> None:
    """A first purchase gets the thank-you at once and the second-sale offer on day 14 at
    10:00 local time, not a minute before; re-running at the same moment sends nothing."""
    # 08:00 in London: day 14 at 10:00 is the first 10:00 after purchase + 14 days
    event(shop, "2027-01-04T08:00:00Z", "purchase", "ada@example.com", '{"amount": 20}')
    first = run_once(shop, "2027-01-04T08:00:00Z")
    assert ("ada@example.com", "welcome", "thank-you") in sent(first)
    (message_id,) = [d["message_id"] for d in first["deliveries"] if d["campaign"] == "welcome"]
    assert "Thank you for your order, Ada!" in str(eml(shop, message_id)["Subject"])
    assert sent(run_once(shop, "2027-01-04T08:00:00Z")) == []

    offer = sends_of(shop, "ada@example.com")[("welcome", "second-sale")]
    assert offer["due_at"].startswith("2027-01-18T10:00:00")  # London is UTC in January
    assert ("welcome", "second-sale") not in {
        (c, s) for _, c, s in sent(run_once(shop, "2027-01-18T09:59:00Z"))
    }
    report = run_once(shop, "2027-01-18T10:00:00Z")
    assert ("ada@example.com", "welcome", "second-sale") in sent(report)
    assert sent(run_once(shop, "2027-01-18T10:00:00Z")) == []
    assert enrollments_of(shop, "ada@example.com")["welcome"]["status"] == "completed"


def test_second_purchase_converts_cancels_offer_and_asks_for_referral(shop: Project) -> None:
    """A second purchase on day 5 converts welcome (attributed to the thank-you), cancels the
    offer, and the referral request follows three days later at 10:00."""
    event(shop, "2027-01-04T15:00:00Z", "purchase", "ada@example.com", '{"amount": 20}')
    run_once(shop, "2027-01-04T15:00:00Z")
    event(shop, "2027-01-09T09:00:00Z", "purchase", "ada@example.com", '{"amount": 30}')
    welcome = enrollments_of(shop, "ada@example.com")["welcome"]
    assert welcome["status"] == "converted"
    assert welcome["attributed_step"] == "thank-you"
    sends = sends_of(shop, "ada@example.com")
    assert sends[("welcome", "second-sale")]["status"] == "cancelled"
    assert sends[("referral-request", "ask")]["due_at"].startswith("2027-01-12T10:00")
    later = sent(run_once(shop, "2027-01-20T12:00:00Z"))
    assert ("ada@example.com", "referral-request", "ask") in later
    assert ("ada@example.com", "welcome", "second-sale") not in later


def test_reply_ends_the_sequence(shop: Project) -> None:
    """A reply exits welcome (exit_on: [reply]); the offer is never sent."""
    event(shop, "2027-01-04T15:00:00Z", "purchase", "ada@example.com")
    run_once(shop, "2027-01-04T15:00:00Z")
    event(shop, "2027-01-06T09:00:00Z", "reply", "ada@example.com")
    assert enrollments_of(shop, "ada@example.com")["welcome"]["status"] == "exited"
    assert sends_of(shop, "ada@example.com")[("welcome", "second-sale")]["status"] == "cancelled"
    assert all(c == "value-newsletter" for _, c, _ in sent(run_once(shop, "2027-01-30T12:00:00Z")))


def test_unsubscribe_cancels_planned_sends(shop: Project) -> None:
    """After an unsubscribe nothing more is sent, not even what was already planned."""
    event(shop, "2027-01-04T15:00:00Z", "purchase", "ada@example.com")
    run_once(shop, "2027-01-04T15:00:00Z")
    assert (
        shop.run(
            "--now", "2027-01-05T10:00:00Z", "customers", "unsubscribe", "ada@example.com"
        ).exit_code
        == 0
    )
    assert all(to != "ada@example.com" for to, _, _ in sent(run_once(shop, "2027-02-28T12:00:00Z")))
    assert sends_of(shop, "ada@example.com")[("welcome", "second-sale")]["status"] == "cancelled"


def test_newsletter_every_six_weeks_with_the_next_edition(shop: Project) -> None:
    """The newsletter goes on 2027-01-05 at 09:00 local and every six weeks after, each
    run with the next edition, until none is left (three of the nine kept here)."""
    for extra in sorted((shop.root / "campaigns" / "newsletters").glob("*.md"))[3:]:
        extra.unlink()
    subjects: list[str] = []
    for day in ("2027-01-05", "2027-02-16", "2027-03-30", "2027-05-11"):
        report = run_once(shop, f"{day}T09:00:00Z")
        news = [
            d
            for d in report["deliveries"]
            if d["campaign"] == "value-newsletter" and d["to"] == "ada@example.com"
        ]
        if day == "2027-05-11":
            assert news == []
            assert any("no edition left" in w for w in report["warnings"])
            continue
        assert len(news) == 1, (day, report)
        subjects.append(str(eml(shop, news[0]["message_id"])["Subject"]))
    assert len(set(subjects)) == 3
    tokyo = sends_of(shop, "hiro@example.com")[("value-newsletter", "edition")]
    assert tokyo["due_at"].startswith("2027-01-05T00:00")  # 09:00 in Tokyo


def test_birthday_yearly_at_send_at(shop: Project) -> None:
    """The birthday greeting goes at 09:00 local on the day, every year, once."""
    assert sent(run_once(shop, "2027-03-09T23:00:00Z")) == []
    greeting = ("ada@example.com", "birthday", "greeting")
    assert greeting not in sent(run_once(shop, "2027-03-10T08:59:00Z"))
    assert greeting in sent(run_once(shop, "2027-03-10T09:00:00Z"))
    assert greeting not in sent(run_once(shop, "2027-03-10T18:00:00Z"))
    assert greeting in sent(run_once(shop, "2028-03-10T09:30:00Z"))


def test_simulate_shows_the_timeline_and_changes_nothing(shop: Project) -> None:
    """simulate lists what the real planner would send, per customer and time, and leaves
    the database and the outbox folder exactly as they were."""
    event(shop, "2027-01-04T08:00:00Z", "purchase", "ada@example.com", '{"amount": 20}')
    before = shop.run("customers", "show", "ada@example.com", "--json").stdout
    result = shop.run("--now", "2027-01-04T08:00:00Z", "simulate", "--days", "20", "--json")
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.stdout)
    planned = [(s["to"], s["campaign"], s["step"], s["at"][:16]) for s in timeline["sends"]]
    assert ("ada@example.com", "welcome", "thank-you", "2027-01-04T08:00") in planned
    assert ("ada@example.com", "welcome", "second-sale", "2027-01-18T10:00") in planned
    assert ("hiro@example.com", "value-newsletter", "edition", "2027-01-05T00:00") in planned
    thank_you = next(s for s in timeline["sends"] if s["step"] == "thank-you")
    assert thank_you["subject"] == "Thank you for your order, Ada!"
    only = shop.run(
        "--now",
        "2027-01-04T08:00:00Z",
        "simulate",
        "--days",
        "20",
        "--json",
        "--customer",
        "hiro@example.com",
    )
    assert {s["to"] for s in json.loads(only.stdout)["sends"]} == {"hiro@example.com"}
    table = shop.run("--now", "2027-01-04T08:00:00Z", "simulate", "--days", "20")
    assert "welcome / second-sale" in table.stdout
    assert "nothing was sent or changed" in table.stdout
    assert shop.run("customers", "show", "ada@example.com", "--json").stdout == before
    assert not (shop.root / "outbox").exists()

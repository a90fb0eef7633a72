"""Marketing consent through the real commands on each database (DESIGN 13): `[consent]
default` for customers created without a statement, the consent record of imports, events,
shops and unsubscribes, `customers show` and `export`, `forget`; a campaign's topic."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from dripper.customers.model import CustomerData, Status
from dripper.store import open_store
from dripper.store.recording import record_event
from dripper.store.schema import consent_records, signups
from tests.cli.conftest import Project

NOW = "2027-01-04T15:00:00Z"
AT = datetime(2027, 1, 4, 15, tzinfo=UTC)


def url(project: Project) -> str:
    text = (project.root / "config.toml").read_text()
    return text.split('url = "', 1)[1].split('"', 1)[0]


def shown(project: Project, email: str) -> dict[str, object]:
    result = project.run("customers", "show", email, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def test_consent_default_not_subscribed(project: Project) -> None:
    """`[consent] default = "not_subscribed"`: imported and event-made customers without a
    statement are not_subscribed; a `marketing` column still says subscribed."""
    config = project.root / "config.toml"
    text = config.read_text()
    config.write_text(text.replace('default = "subscribed"', 'default = "not_subscribed"'))
    project.write("people.csv", "email,marketing\nquiet@example.com,\nyes@example.com,subscribed\n")
    assert project.run("--now", NOW, "customers", "import", "people.csv").exit_code == 0
    result = project.run("--now", NOW, "event", "purchase", "buyer@example.com")
    assert result.exit_code == 0, result.output
    marketing = {
        email: shown(project, email)["customer"]["marketing"]  # type: ignore[index]
        for email in ("quiet@example.com", "yes@example.com", "buyer@example.com")
    }
    assert marketing == {
        "quiet@example.com": "not_subscribed",
        "yes@example.com": "subscribed",
        "buyer@example.com": "not_subscribed",
    }


def test_the_record_of_imports_events_shops_and_unsubscribes(project: Project) -> None:
    """An import that states marketing is recorded once (again: nothing new); a shop's
    webhook and the events API as `shop` and `api`; an unsubscribe as `unsubscribed`. An
    import never brings an unsubscribed customer back."""
    project.write("a.csv", "email,marketing\nann@example.com,not_subscribed\n")
    for _ in range(2):
        assert project.run("--now", NOW, "customers", "import", "a.csv").exit_code == 0
    store = open_store(url(project))
    try:
        with store.transaction() as conn:
            given = CustomerData(email="ann@example.com", marketing=Status.SUBSCRIBED)
            record_event(
                conn, "ann@example.com", "purchase", at=AT, data={}, now=AT,
                ext_id="shopify:order:1", fields=given,
            )  # fmt: skip
            given = CustomerData(email="ann@example.com", marketing=Status.NOT_SUBSCRIBED)
            record_event(conn, "ann@example.com", "signup", at=AT, data={}, now=AT, fields=given)
        store.unsubscribe("ann@example.com", now=AT)
    finally:
        store.close()
    project.write("b.csv", "email,marketing\nann@example.com,subscribed\n")
    assert project.run("--now", NOW, "customers", "import", "b.csv").exit_code == 0
    data = shown(project, "ann@example.com")
    assert data["customer"]["marketing"] == "unsubscribed"  # type: ignore[index]
    record = [(c["kind"], c["marketing"], c["source"]) for c in data["consent"]]  # type: ignore[attr-defined]
    assert record == [
        ("imported", "not_subscribed", "a.csv"),
        ("shop", "subscribed", "shop"),
        ("api", "not_subscribed", "api"),
        ("unsubscribed", "unsubscribed", ""),
    ]
    assert set(data["consent"][0]) == {  # type: ignore[index]
        "at", "kind", "marketing", "source", "ip", "user_agent", "consent_text_sha256", "topics",
    }  # fmt: skip
    text = " ".join(project.run("customers", "show", "ann@example.com").output.split())
    assert "consent imported -> not_subscribed a.csv" in text


def test_export_has_the_last_consent_and_imports_it_back_as_nothing(project: Project) -> None:
    """`consent_at` and `consent_source` columns (empty for a customer with no record);
    importing the export back makes no attribute of them."""
    project.write("a.csv", "email,marketing\nann@example.com,subscribed\nbo@example.com,\n")
    assert project.run("--now", NOW, "customers", "import", "a.csv").exit_code == 0
    out = project.run("customers", "export").output
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["ann@example.com"]["consent_source"] == "imported:a.csv"
    assert rows["ann@example.com"]["consent_at"].startswith("2027-01-04T15:00")
    assert (rows["bo@example.com"]["consent_at"], rows["bo@example.com"]["consent_source"]) == (
        "",
        "",
    )
    project.write("back.csv", out)
    assert project.run("--now", NOW, "customers", "import", "back.csv").exit_code == 0
    attributes = shown(project, "ann@example.com")["customer"]["attributes"]  # type: ignore[index]
    assert "consent_at" not in attributes
    assert "consent_source" not in attributes


def test_forget_erases_the_record_and_the_signups(project: Project) -> None:
    """After `forget`, no consent record and no signup of the address remain."""
    project.write("a.csv", "email,marketing\nann@example.com,subscribed\n")
    assert project.run("--now", NOW, "customers", "import", "a.csv").exit_code == 0
    store = open_store(url(project))
    try:
        with store.transaction() as conn:
            conn.execute(
                sa.insert(signups).values(
                    key="k" * 26, email="ann@example.com", form="default", text_hash="0" * 64,
                    created_at=AT, expires_at=AT, status="sent", next_attempt_at=AT,
                )
            )  # fmt: skip
    finally:
        store.close()
    result = project.run("--now", NOW, "customers", "forget", "ann@example.com", "--yes")
    assert result.exit_code == 0, result.output
    store = open_store(url(project))
    try:
        with store.reading() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(consent_records)).scalar() == 0
            )
            assert conn.execute(sa.select(sa.func.count()).select_from(signups)).scalar() == 0
    finally:
        store.close()


def test_check_names_a_topic_not_configured(project: Project) -> None:
    """`topic: gossip` without it in [topics]: a problem at the campaign's line, exit 1."""
    path = project.root / "campaigns" / "value-newsletter.yaml"
    text = path.read_text()
    path.write_text(text.replace("topic: news", "topic: gossip"))
    result = project.run("check")
    assert result.exit_code == 1
    line = 1 + text.split("\n").index(next(x for x in text.split("\n") if x.startswith("topic:")))
    assert f"value-newsletter.yaml:{line}" in result.output
    assert "no topic 'gossip' in [topics]" in result.output


def test_a_send_of_a_topic_left_is_skipped_with_the_reason(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer who kept no topic gets no newsletter edition (`topic: news`): the send is
    skipped with "left the topic news"; another customer gets it."""
    monkeypatch.setenv("DRIPPER_SECRET", "consent-tests-secret-0123456789")
    project.write("a.csv", "email\nkeeps@example.com\nleft@example.com\n")
    assert project.run("--now", NOW, "customers", "import", "a.csv").exit_code == 0
    store = open_store(url(project))
    try:
        from dripper.store.consent import choose_topics

        with store.transaction() as conn:
            assert choose_topics(conn, "left@example.com", (), now=AT, ip=None, user_agent=None)
    finally:
        store.close()
    result = project.run("--now", "2027-01-05T18:00:00Z", "run", "--once")
    assert result.exit_code == 0, result.output
    sends = {
        email: [
            (s["campaign"], s["status"], s["reason"])
            for s in shown(project, email)["sends"]  # type: ignore[attr-defined]
        ]
        for email in ("keeps@example.com", "left@example.com")
    }
    assert ("value-newsletter", "sent", None) in sends["keeps@example.com"]
    assert ("value-newsletter", "skipped", "left the topic news") in sends["left@example.com"]

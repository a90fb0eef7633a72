"""VERP: with `[bounces] return_path` set, each email's envelope sender is that address with
its delivery id after a `+` (the random part of its Message-ID), and a bounce that comes
back to that address alone is matched to its delivery; without it, MAIL FROM is From."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.cli.conftest import Project
from tests.support.smtpserver import FaultyServer, use_smtp

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC).isoformat()
SECRET = {"DRIPPER_SECRET": "verp-tests-secret-0123456789"}


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    with FaultyServer() as running:
        yield running


def send_two(project: Project, server: FaultyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIPPER_SECRET", SECRET["DRIPPER_SECRET"])
    use_smtp(project.root / "config.toml", server)
    for address in ("ada@example.com", "grace@example.com"):
        assert project.run("--now", T0, "event", "purchase", address).exit_code == 0
    result = project.run("--now", T0, "run", "--once")
    assert result.exit_code == 0, result.output


def test_the_envelope_sender_names_the_delivery(
    project: Project, server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAIL FROM is bounces+<delivery id>@bounce.acme.test, the id of that email's own
    Message-ID, different for each email; a bounce to that address suppresses it."""
    config = project.root / "config.toml"
    config.write_text(
        config.read_text().replace('return_path = ""', 'return_path = "bounces@bounce.acme.test"')
    )
    send_two(project, server, monkeypatch)
    assert len(server.messages) == 2
    for received in server.messages:
        assert received.message_id is not None
        delivery = received.message_id.strip("<>").split("@")[0]
        assert received.sender == f"bounces+{delivery}@bounce.acme.test"
    to = server.messages[0].recipients[0]
    sender = server.messages[0].sender
    bounce = (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: {sender}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.net>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "\r\n"
        "This is the mail system at host mx.example.net.\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "The mail system: user unknown (550 5.1.1 mailbox does not exist)\r\n"
    )
    taken = project.run("--now", T0, "inbound", "-", "--json", input=bounce)
    assert taken.exit_code == 0, taken.output
    assert '"class": "bounce_hard"' in taken.output
    shown = project.run("customers", "show", to)
    assert "suppressed: bounced" in shown.output


def test_without_a_return_path_the_envelope_sender_is_from(
    project: Project, server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No VERP unless asked for."""
    send_two(project, server, monkeypatch)
    assert {r.sender for r in server.messages} == {"hello@acme.test"}

"""Every SMTP fault through `dripper run --once` on SQLite and PostgreSQL: the outcome of
DESIGN 7 recorded for each send, with the server's reply; 5.1.x suppresses; nothing is
lost; the server sees each Message-ID once, except the ambiguous one. And `send-test`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dripper.config import load_config
from dripper.store import open_store
from dripper.store.schema import customers, delivery_attempts, outbox, suppressions
from tests.cli.conftest import Project
from tests.support.smtpserver import Fault, FaultyServer, use_smtp

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
ADDRESSES = [f"{name}@example.com" for name in ("ok", "busy", "gone", "spam", "cut", "lost")]


def faults() -> list[Fault]:
    """Fresh each time: a fault counts its uses."""
    return [
        Fault("RCPT", "451 4.3.0 mailbox busy", recipients=["busy@example.com"]),
        Fault("RCPT", "550 5.1.1 no such user", recipients=["gone@example.com"]),
        Fault("DOT", "554 5.7.1 refused as spam", recipients=["spam@example.com"]),
        Fault("DATA", drop=True, recipients=["cut@example.com"], times=1),
        Fault("DOT", drop=True, recipients=["lost@example.com"], times=1),
    ]


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    with FaultyServer(faults=faults()) as running:
        yield running


def test_each_fault_gives_its_outcome_and_nothing_is_lost(
    project: Project, server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-not-for-production")
    use_smtp(project.root / "config.toml", server)
    for address in ADDRESSES:
        result = project.run("--now", T0.isoformat(), "event", "purchase", address)
        assert result.exit_code == 0, result.output

    first = project.run("--now", T0.isoformat(), "run", "--once")
    assert first.exit_code == 1  # the failed sends
    config = load_config(project.root / "config.toml")
    store = open_store(config.database_url)
    try:

        def state() -> dict[str, tuple[str, str | None, int]]:
            with store.reading() as conn:
                query = (
                    sa.select(
                        outbox.c.status, outbox.c.reason, outbox.c.attempts, customers.c.email
                    )
                    .join(customers, customers.c.id == outbox.c.customer_id)
                    .where(outbox.c.step == "thank-you")
                )
                return {r.email: (r.status, r.reason, r.attempts) for r in conn.execute(query)}

        now = state()
        assert now["ok@example.com"][0] == "sent"
        assert now["busy@example.com"][0] == "planned"  # deferred: retried later
        assert "451" in (now["busy@example.com"][1] or "")
        assert now["gone@example.com"][0] == "failed"
        assert now["spam@example.com"][0] == "failed"
        assert "5.7.1" in (now["spam@example.com"][1] or "")
        assert now["cut@example.com"][0] == "planned"  # lost before the final dot: retried
        assert now["lost@example.com"][0] == "planned"  # ambiguous: retried, same Message-ID
        assert (now["lost@example.com"][1] or "").startswith("ambiguous")
        assert all(attempts == 1 for _, _, attempts in now.values())

        with store.reading() as conn:
            replies = list(
                conn.execute(sa.select(delivery_attempts.c.outcome, delivery_attempts.c.smtp_reply))
            )
            suppressed = conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar()
        assert len(replies) == 6
        assert all(reply for _, reply in replies)  # each attempt keeps what the server said
        assert suppressed == 1  # gone@ only; a policy rejection never suppresses

        later = (T0 + timedelta(minutes=6)).isoformat()
        second = project.run("--now", later, "run", "--once")
        assert second.exit_code == 0, second.output
        after = state()
        assert after["cut@example.com"][0] == "sent"
        assert after["lost@example.com"][0] == "sent"
        assert after["busy@example.com"][0] == "planned"  # still 451: still retrying
        assert after["busy@example.com"][2] == 2

        with store.reading() as conn:
            ids = dict(
                conn.execute(
                    sa.select(outbox.c.id, outbox.c.message_id).where(outbox.c.step == "thank-you")
                ).all()
            )
        lost_id = next(
            i
            for i, m in ids.items()
            if m and m in server.message_ids and server.message_ids[m] == 2
        )
        assert lost_id  # the ambiguous one reached the server twice, with one Message-ID
        for mid in ids.values():
            assert server.accepted[mid] <= 1 or server.message_ids[mid] == 2
        assert sum(1 for m in ids.values() if server.message_ids[m] > 1) == 1

        give_up = (T0 + timedelta(days=3, minutes=1)).isoformat()
        project.run("--now", give_up, "run", "--once")
        assert state()["busy@example.com"][0] == "failed"  # gave up after 3 days
        assert "gave up" in (state()["busy@example.com"][1] or "")
    finally:
        store.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_send_test_goes_through_smtp(
    project: Project, server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-not-for-production")
    use_smtp(project.root / "config.toml", server)
    result = project.run("send-test", "welcome", "thank-you", "--to", "ok@example.com")
    assert result.exit_code == 0, result.output
    assert "via smtp: sent" in result.output
    [received] = server.messages
    assert received.recipients == ("ok@example.com",)
    assert b"Thank you" in received.data

    refused = project.run("send-test", "welcome", "thank-you", "--to", "gone@example.com")
    assert refused.exit_code == 1
    assert "5.1.1" in refused.output

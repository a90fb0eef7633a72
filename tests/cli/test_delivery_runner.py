"""The daemon's delivery bookkeeping on SQLite and PostgreSQL, with the in-memory transport:
crash recovery (requeued or ambiguous), policy pauses, --dry-run, the one-daemon lock and
the shared rate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.render.renderer import Renderer
from dripper.runner import Runner
from dripper.services.delivery import Sender
from dripper.store import Store, campaign_state, deliveries, open_store, throttle
from dripper.store.schema import delivery_attempts, outbox
from dripper.tokens import new_message_id
from dripper.transport.base import Envelope, Outcome, OutcomeKind
from dripper.transport.memory import MemoryTransport
from tests.cli.conftest import Project

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)  # the default of [sending] lease


@dataclass
class Setup:
    project: Project
    store: Store
    transport: MemoryTransport

    def runner(self, owner: str = "test", transport: MemoryTransport | None = None) -> Runner:
        config = load_config(self.project.root / "config.toml")
        campaigns, problems = load_campaigns(config.campaigns_dir, config.templates_dir)
        assert not problems
        sender = Sender(
            config,
            self.store,
            campaigns,
            renderer=Renderer(config),
            transport=transport or self.transport,
            owner=owner,
        )
        return Runner(config, self.store, campaigns, sender=sender)

    def outbox(self) -> list[sa.Row[tuple[object, ...]]]:
        with self.store.reading() as conn:
            return list(conn.execute(sa.select(outbox).order_by(outbox.c.id)))


@pytest.fixture
def setup(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-not-for-production")
    config = load_config(project.root / "config.toml")
    store = open_store(config.database_url)
    store.ensure_schema()
    try:
        yield Setup(project, store, MemoryTransport())
    finally:
        store.close()


def buy(runner: Runner, count: int) -> list[str]:
    emails = [f"buyer{i}@example.com" for i in range(count)]
    for email in emails:
        runner.planner.record_event(email, "purchase", at=T0, data={"amount": 10}, now=T0)
    return emails


def test_a_crash_requeues_unsent_work_and_marks_in_flight_sends_ambiguous(setup: Setup) -> None:
    runner = setup.runner()
    buy(runner, 4)
    # A daemon claims the four thank-yous, writes attempts for two (they were handed to
    # SMTP), and dies before recording anything.
    with setup.store.transaction() as conn:
        due = deliveries.claim_due(
            conn,
            now=T0,
            limit=10,
            owner="dead-daemon",
            lease=LEASE,
            new_message_id=lambda: new_message_id("hello@acme.test"),
        )
    assert len(due) == 4
    in_flight = [d.id for d in due[:2]]
    with setup.store.transaction() as conn:
        deliveries.open_attempts(conn, in_flight, now=T0)
        if setup.store.dialect == "postgresql":  # its lease runs out (database time)
            conn.execute(sa.update(outbox).values(lease_until=datetime(2000, 1, 1, tzinfo=UTC)))

    report = asyncio.run(runner.sender.send_due(T0))

    assert report.sent == 2
    assert report.ambiguous == 2
    rows = {r.id: r for r in setup.outbox() if r.step == "thank-you"}
    for oid in in_flight:
        row = rows[oid]
        assert row.status == "planned"
        assert row.reason is not None
        assert row.reason.startswith("ambiguous")
        assert row.attempts == 1
        assert row.next_attempt_at == T0 + timedelta(minutes=5)
    with setup.store.reading() as conn:
        outcomes = conn.execute(
            sa.select(delivery_attempts.c.outcome).where(
                delivery_attempts.c.outbox_id.in_(in_flight)
            )
        ).scalars()
        assert sorted(outcomes) == ["ambiguous", "ambiguous"]
    first_ids = {d.id: d.message_id for d in due}

    # The retry goes out with the same Message-ID, once.
    later = T0 + timedelta(minutes=6)
    report = asyncio.run(runner.sender.send_due(later))
    assert report.sent == 2
    sent_ids = [e.message_id for e in setup.transport.sent]
    assert sorted(sent_ids) == sorted(first_ids.values())
    assert all(rows_.status == "sent" for rows_ in setup.outbox() if rows_.step == "thank-you")


def test_repeated_policy_rejections_pause_the_campaign_until_resumed(setup: Setup) -> None:
    setup.project.write(
        "config.toml",
        (setup.project.root / "config.toml")
        .read_text()
        .replace("batch_size = 500", "batch_size = 2"),
    )
    runner = setup.runner()
    emails = buy(runner, 8)
    rejected = Outcome(OutcomeKind.FAILED, 554, "5.7.1", "message refused as spam")
    setup.transport.answers = {email: rejected for email in emails}

    report = asyncio.run(runner.sender.send_due(T0))

    assert report.failed == 6  # the 5th rejection pauses; its batch mate is already out
    with setup.store.reading() as conn:
        paused = campaign_state.paused_campaigns(conn)
    assert "welcome" in paused
    assert "5.7.1" in paused["welcome"]
    assert "dripper resume welcome" in paused["welcome"]
    planned = [r for r in setup.outbox() if r.step == "thank-you" and r.status == "planned"]
    assert len(planned) == 2
    with setup.store.reading() as conn:  # policy rejections never suppress the customer
        assert conn.execute(sa.text("SELECT count(*) FROM suppressions")).scalar_one() == 0

    result = setup.project.run("resume", "welcome")
    assert result.exit_code == 0, result.output
    setup.transport.answers = {}
    assert asyncio.run(runner.sender.send_due(T0)).sent == 2
    assert setup.project.run("resume", "welcome").exit_code == 2  # not paused any more


def test_dry_run_renders_what_is_due_and_changes_nothing(setup: Setup) -> None:
    runner = setup.runner()
    buy(runner, 3)
    before = setup.outbox()

    result = setup.project.run("--now", T0.isoformat(), "run", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.output.count("would send welcome/thank-you") == 3
    assert setup.outbox() == before
    with setup.store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(delivery_attempts)).scalar() == 0
    assert not list((setup.project.root / "outbox").glob("*.eml"))


def test_the_shared_rate_hands_out_consecutive_slots(setup: Setup) -> None:
    with setup.store.transaction() as conn:
        first = throttle.reserve(conn, 10, 100.0)
    with setup.store.transaction() as conn:
        second = throttle.reserve(conn, 10, 100.0)
    assert first == pytest.approx(0, abs=0.05)
    assert second == pytest.approx(0.1, abs=0.05)  # after the first block's 10 slots


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_daemon_on_one_sqlite_file_refuses_to_start(setup: Setup) -> None:
    from pathlib import Path

    from dripper.daemonlock import DaemonLock

    database = setup.store.engine.url.database
    assert database is not None
    with DaemonLock(Path(database)):
        result = setup.project.run("run", "--once")
    assert result.exit_code == 2
    assert "another dripper daemon" in result.output
    assert "one daemon per database file" in result.output
    assert setup.project.run("run", "--once").exit_code == 0  # once the first one is gone


def test_policy_rejections_are_counted_across_daemons_and_restarts(setup: Setup) -> None:
    """Two rejections by daemon A, two by A restarted, one by daemon B: the fifth pauses the
    campaign, however the five were split (the count lives in the database)."""
    setup.project.write(
        "config.toml",
        (setup.project.root / "config.toml")
        .read_text()
        .replace("batch_size = 500", "batch_size = 1"),
    )
    emails = buy(setup.runner(), 8)
    rejected = Outcome(OutcomeKind.FAILED, 554, "5.7.1", "message refused as spam")

    def daemon(owner: str, sends: int | None) -> int:
        """A fresh daemon (no memory of any other) that stops after `sends` sends."""
        transport = MemoryTransport({email: rejected for email in emails})
        runner = setup.runner(owner, transport)
        stop = asyncio.Event()

        async def go() -> int:
            original = transport.send

            async def counted(envelope: Envelope) -> Outcome:
                outcome = await original(envelope)
                nonlocal sends
                if sends is not None:
                    sends -= 1
                    if sends == 0:
                        stop.set()  # honoured before the next batch is claimed
                return outcome

            transport.send = counted  # type: ignore[method-assign]
            return (await runner.sender.send_due(T0, stop=stop)).failed

        return asyncio.run(go())

    def paused() -> dict[str, str]:
        with setup.store.reading() as conn:
            return campaign_state.paused_campaigns(conn)

    assert daemon("daemon-a", 2) == 2
    assert daemon("daemon-a-restarted", 2) == 2
    assert "welcome" not in paused()
    assert daemon("daemon-b", None) == 1  # the fifth rejection pauses: nothing more is sent
    assert "paused after 5 policy rejections" in paused()["welcome"]
    failed = [r for r in setup.outbox() if r.step == "thank-you" and r.status == "failed"]
    assert len(failed) == 5


def test_a_delivery_ends_a_run_of_policy_rejections(setup: Setup) -> None:
    """Four rejections, a delivery, four more: no pause (five *in a row* pause)."""
    setup.project.write(
        "config.toml",
        (setup.project.root / "config.toml")
        .read_text()
        .replace("batch_size = 500", "batch_size = 1"),
    )
    emails = buy(setup.runner(), 9)
    rejected = Outcome(OutcomeKind.FAILED, 554, "5.7.1", "message refused as spam")
    runner = setup.runner()
    setup.transport.answers = {email: rejected for email in emails if email != emails[4]}
    report = asyncio.run(runner.sender.send_due(T0))
    assert (report.failed, report.sent) == (8, 1)
    with setup.store.reading() as conn:
        assert "welcome" not in campaign_state.paused_campaigns(conn)


class CountingTransport(MemoryTransport):
    """Notes, at each send, how many attempts the database holds: what a crash there would
    leave ambiguous at most."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.opened: list[int] = []

    async def send(self, envelope: Envelope) -> Outcome:
        with self.store.reading() as conn:
            self.opened.append(
                conn.execute(sa.select(sa.func.count()).select_from(delivery_attempts)).scalar_one()
            )
        return await super().send(envelope)


@pytest.mark.parametrize("chunk", [1, 3])
def test_chunk_bounds_the_attempts_open_ahead_of_a_send(setup: Setup, chunk: int) -> None:
    """`[sending] chunk` sets how far ahead of the email being sent attempts are written:
    its own chunk, and at most the next one (one connection: chunk sends per chunk)."""
    text = (setup.project.root / "config.toml").read_text()
    assert "concurrency = 4 " in text
    assert "chunk = 4 " in text
    setup.project.write(
        "config.toml",
        text.replace("concurrency = 4 ", "concurrency = 1 ").replace(
            "chunk = 4 ", f"chunk = {chunk} "
        ),
    )
    transport = CountingTransport(setup.store)
    runner = setup.runner(transport=transport)
    buy(runner, 7)

    assert asyncio.run(runner.sender.send_due(T0)).sent == 7
    assert len(transport.opened) == 7
    for k, opened in enumerate(transport.opened):
        part = k // chunk
        assert min(7, chunk * (part + 1)) <= opened <= min(7, chunk * (part + 2)), (k, opened)

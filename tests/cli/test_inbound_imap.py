"""Replies and bounces polled from a real Dovecot by `dripper run --once`, on SQLite and
PostgreSQL: a reply ends the sequence in the next pass and stays unseen in the mailbox; a
second pass records nothing new; a UIDVALIDITY change and a dropped server lose nothing
and repeat nothing; a mailbox that cannot be read never stops the sending."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import enrollments, events, inbound_messages
from tests.cli.conftest import Project
from tests.support.dovecot import DovecotServer, dovecot  # noqa: F401 (fixture)
from tests.support.inbound import NOW, configure, corpus, seed

AT = NOW.isoformat()
ENV = {"DRIPPER_SECRET": "imap-tests-secret-0123456789", "DRIPPER_IMAP_PASSWORD": ""}


@pytest.fixture
def shop(
    project: Project,
    db_url: str,
    dovecot: DovecotServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Project:
    """The corpus's sends in the database, and [replies] reading the Dovecot INBOX."""
    configure(project.root / "config.toml")
    seed(db_url)
    config = project.root / "config.toml"
    head, rest = config.read_text().split("[replies]", 1)
    replies, tail = rest.split("[bounces]", 1)
    replies = (
        replies.replace('imap_host = ""', 'imap_host = "127.0.0.1"')
        .replace("imap_port = 993", f"imap_port = {dovecot.port}")
        .replace('security = "tls"', 'security = "none"')
        .replace('username = ""', f'username = "{dovecot.user}"')
    )
    config.write_text(f"{head}[replies]{replies}[bounces]{tail}")
    monkeypatch.setenv("DRIPPER_SECRET", ENV["DRIPPER_SECRET"])
    monkeypatch.setenv("DRIPPER_IMAP_PASSWORD", dovecot.password)
    return project


def run(shop: Project) -> dict[str, object]:
    result = shop.run("--now", AT, "run", "--once", "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def count(db_url: str, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    store = open_store(db_url)
    try:
        with store.reading() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(*where)
            return int(conn.execute(query).scalar_one())
    finally:
        store.close()


def test_a_polled_reply_ends_the_sequence_and_stays_unseen(
    shop: Project, db_url: str, dovecot: DovecotServer  # noqa: F811
) -> None:
    """The reply is recorded in the next pass (a reply event, the enrollments exited), the
    message keeps no \\Seen flag and stays in INBOX; a second pass records nothing new."""
    uid = dovecot.append("INBOX", corpus("reply-gmail-with-quote.eml"))
    first = run(shop)
    assert (first["inbound"], first["mailbox"]) == (1, None)
    assert count(db_url, events, events.c.type == "reply") == 1
    assert count(db_url, enrollments, enrollments.c.status == "exited") == 2
    assert "\\Seen" not in dovecot.flags("INBOX", uid)
    assert dovecot.uids("INBOX") == [uid]
    second = run(shop)
    assert second["inbound"] == 0
    assert count(db_url, inbound_messages) == 1


def test_a_new_uidvalidity_rereads_the_folder_and_records_nothing_twice(
    shop: Project, db_url: str, dovecot: DovecotServer  # noqa: F811
) -> None:
    """After UIDVALIDITY changes the folder is read again from the start: what was recorded
    stays recorded once, and a message that came meanwhile is recorded."""
    dovecot.append("INBOX", corpus("postfix-hard-user-unknown.eml"))
    assert run(shop)["inbound"] == 1
    dovecot.reset_uidvalidity("INBOX")
    dovecot.append("INBOX", corpus("arf-yahoo-abuse.eml"))
    assert run(shop)["inbound"] == 1  # only the complaint is new
    assert count(db_url, inbound_messages) == 2


def test_a_mailbox_that_cannot_be_read_never_stops_sending(
    shop: Project, db_url: str, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Dovecot down: the pass still sends (a purchase's thank-you goes out), says what is
    wrong with the mailbox, and the messages that arrived are recorded once it is back;
    a wrong password is one clear line that names neither the password nor a traceback."""
    dovecot.append("INBOX", corpus("reply-iphone-no-quote.eml"))
    dovecot.stop()
    assert shop.run("--now", AT, "event", "purchase", "new.buyer@example.com").exit_code == 0
    down = run(shop)
    assert down["sent"] == 1
    assert down["inbound"] == 0
    assert "127.0.0.1" in str(down["mailbox"])
    dovecot.start()
    dovecot.append("INBOX", corpus("gmail-vacation-responder.eml"))
    back = run(shop)
    assert (back["inbound"], back["mailbox"]) == (2, None)
    assert count(db_url, inbound_messages) == 2
    monkeypatch.setenv("DRIPPER_IMAP_PASSWORD", "wrong-password")
    wrong = shop.run("--now", AT, "run", "--once")
    assert wrong.exit_code == 0, wrong.output
    assert "IMAP login failed" in wrong.output
    assert "wrong-password" not in wrong.output
    assert "Traceback" not in wrong.output


def test_a_connection_cut_in_the_middle_loses_and_repeats_nothing(
    shop: Project,
    db_url: str,
    dovecot: DovecotServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One message a batch; the server goes away right after the first is recorded: the
    pass says so and the next one records the other three, none twice."""
    from dripper.services.inbound import Inbox

    names = ["postfix-hard-user-unknown.eml", "postfix-soft-delayed.eml",
             "arf-yahoo-abuse.eml", "reply-iphone-no-quote.eml"]  # fmt: skip
    for name in names:
        dovecot.append("INBOX", corpus(name))
    monkeypatch.setattr(Inbox, "batch", 1)
    original = Inbox.take_in
    taken: list[str] = []

    def take_in_then_cut(self: Inbox, raw: bytes, **kwargs: object) -> object:
        result = original(self, raw, **kwargs)  # type: ignore[arg-type]
        taken.append("x")
        if len(taken) == 1:
            dovecot.stop()  # the connection is cut before the next batch is fetched
        return result

    monkeypatch.setattr(Inbox, "take_in", take_in_then_cut)
    cut = run(shop)
    assert cut["inbound"] == 1
    assert cut["mailbox"]
    dovecot.start()
    monkeypatch.setattr(Inbox, "take_in", original)
    assert run(shop)["inbound"] == len(names) - 1
    assert run(shop)["inbound"] == 0
    assert count(db_url, inbound_messages) == len(names)


def test_processed_messages_move_to_their_folder(
    shop: Project, db_url: str, dovecot: DovecotServer  # noqa: F811
) -> None:
    """With processed_folder set, a recorded message is moved there; nothing is deleted."""
    config = shop.root / "config.toml"
    text = config.read_text().replace('processed_folder = ""', 'processed_folder = "Done"')
    config.write_text(text)
    dovecot.append("INBOX", corpus("reply-gmail-with-quote.eml"))
    assert run(shop)["inbound"] == 1
    assert dovecot.uids("INBOX") == []
    assert len(dovecot.uids("Done")) == 1

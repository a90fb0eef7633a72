"""`dripper inbound` on the real-shaped corpus (tests/data/inbound/), on SQLite and
PostgreSQL: every message gets its class and exactly its effect (suppressed, unsubscribed,
a reply event that ends the welcome sequence, nothing at all), once, however often it is
piped in; hostile input is refused or left alone, never a crash."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import enrollments, events, inbound_messages, suppressions
from tests.cli.conftest import Project
from tests.support.inbound import NOW, SENDS, TABLE, configure, corpus, seed

AT = NOW.isoformat()


@pytest.fixture
def shop(project: Project, db_url: str) -> Project:
    configure(project.root / "config.toml")
    seed(db_url)
    return project


def take(shop: Project, raw: bytes, *, at: str = AT) -> dict[str, object]:
    result = shop.run("--now", at, "inbound", "-", "--json", input=raw)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.stdout)
    return found


def count(db_url: str, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    store = open_store(db_url)
    try:
        with store.reading() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(*where)
            return int(conn.execute(query).scalar_one())
    finally:
        store.close()


def suppressed(db_url: str) -> dict[str, str]:
    store = open_store(db_url)
    try:
        with store.reading() as conn:
            rows = conn.execute(sa.select(suppressions.c.email, suppressions.c.reason))
            return {r.email: r.reason for r in rows}
    finally:
        store.close()


@pytest.mark.parametrize("name", sorted(TABLE))
def test_each_corpus_message_is_classified_and_acted_on_once(
    shop: Project, db_url: str, name: str
) -> None:
    """The class of the table; a hard bounce suppresses its address, a complaint
    suppresses and unsubscribes, a reply is a `reply` event that ends the enrollment; piped
    in again, it is recorded before and nothing happens twice."""
    kind, delivery, _status, _weak = TABLE[name]
    first = take(shop, corpus(name))
    assert first["class"] == kind.value
    assert first["new"] is True
    again = take(shop, corpus(name))
    assert (again["class"], again["new"]) == (kind.value, False)
    assert count(db_url, inbound_messages) == 1
    address = next((s.email for s in SENDS if s.delivery_id == delivery), None)
    if kind.value == "bounce_hard":
        assert suppressed(db_url) == {address: "bounced"}
    elif kind.value == "complaint":
        assert suppressed(db_url) == {address: "complained"}
    elif kind.value == "unsubscribe":
        assert suppressed(db_url) == {address: "unsubscribed"}
    else:
        assert suppressed(db_url) == {}
    replies = count(db_url, events, events.c.type == "reply")
    assert replies == (1 if kind.value == "reply" else 0)
    if kind.value == "reply":  # every welcome enrollment of that customer ends
        theirs = sum(1 for s in SENDS if s.email == address)
        assert count(db_url, enrollments, enrollments.c.status == "exited") == theirs


def test_delay_notices_about_one_email_count_once(shop: Project, db_url: str) -> None:
    """Four delay notices about Linus's one email, over five days, are one soft-bounced
    email, not four (DESIGN 12 counts emails in a row): the address stays subscribed."""
    name = "postfix-soft-delayed.eml"
    address = "linus@mail.example.com"
    days = ["2027-03-05T09:00:00Z", "2027-03-05T15:00:00Z", "2027-03-06T10:00:00Z",
            "2027-03-09T10:00:00Z"]  # fmt: skip
    for i, day in enumerate(days):
        taken = take(shop, corpus(name, message_id=f"soft{i}@mx.example"), at=day)
        assert (taken["class"], taken["new"]) == ("bounce_soft", True)
    assert count(db_url, inbound_messages, inbound_messages.c.kind == "bounce_soft") == 4
    assert address not in suppressed(db_url)


def test_a_reply_is_shown_on_the_customer_sheet(shop: Project) -> None:
    """`customers show` lists the reply with its subject."""
    take(shop, corpus("reply-gmail-with-quote.eml"))
    shown = shop.run("customers", "show", "ada@example.org")
    assert shown.exit_code == 0, shown.output
    assert "reply" in shown.output
    assert "exit on reply" in shown.output


def test_hostile_messages_are_refused_or_left_alone(shop: Project, db_url: str) -> None:
    """A 50 MB message is refused (exit 2) without reading it whole; an empty one too;
    broken MIME is unmatched; a reply claiming a Message-ID never sent is unmatched."""
    program = Path(sys.executable).parent / "dripper"
    huge = subprocess.run(
        [str(program), "--config", str(shop.root / "config.toml"), "inbound", "-"],
        input=b"From: x@example.com\r\n\r\n" + b"x" * (50 * 1024 * 1024),
        capture_output=True,
        check=False,
    )
    assert huge.returncode == 2
    assert b"larger than 10 MiB: refused" in huge.stderr
    assert b"Traceback" not in huge.stderr
    empty = shop.run("inbound", "-", input="")
    assert empty.exit_code == 2
    assert take(shop, corpus("broken-mime.eml"))["class"] == "unmatched"
    assert take(shop, corpus("reply-unknown-message-id.eml"))["class"] == "unmatched"
    assert count(db_url, events, events.c.type == "reply") == 0
    missing = shop.run("inbound", str(shop.root / "nope.eml"))
    assert missing.exit_code == 2
    assert "no such file" in missing.output


def test_a_reply_is_forwarded_once_to_the_person_who_answers(
    shop: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [replies] notify set, the next pass of the daemon forwards the reply (Reply-To:
    the customer, their own words) through the transport, once."""
    import email
    import email.policy

    monkeypatch.setenv("DRIPPER_SECRET", "inbound-tests-secret-0123456789")
    config = shop.root / "config.toml"
    config.write_text(config.read_text().replace('notify = ""', 'notify = "owner@acme.test"'))
    take(shop, corpus("reply-gmail-with-quote.eml"))
    for _ in range(2):
        result = shop.run("--now", AT, "run", "--once", "--json")
        assert result.exit_code == 0, result.output
    forwards = []
    for path in (shop.root / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if "owner@acme.test" in str(message["To"]):
            forwards.append(message)
    assert len(forwards) == 1
    forward = forwards[0]
    assert str(forward["Reply-To"]) == "ada@example.org"
    assert forward["Auto-Submitted"] == "auto-forwarded"
    body = forward.get_body(("plain",))
    assert body is not None
    assert "do you ship to Ireland?" in body.get_content()


# --- temporary failures: exit 75 (EX_TEMPFAIL), so the MTA keeps the message ---------------------

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
REPLY = "reply-gmail-with-quote.eml"


def use_database(shop: Project, url: str) -> None:
    config = shop.root / "config.toml"
    config.write_text(re.sub(r'(?m)^url = ".*"$', f'url = "{url}"', config.read_text()))


def short_busy_timeout(monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """The CLI's SQLite connections wait 0.2 s for a lock instead of 10 s (and run `extra`)."""
    from dripper.store import engine

    pragmas = [p for p in engine._SQLITE_PRAGMAS if "busy_timeout" not in p]
    monkeypatch.setattr(engine, "_SQLITE_PRAGMAS", (*pragmas, "PRAGMA busy_timeout=200", *extra))


@contextmanager
def write_lock_held(db_url: str) -> Iterator[None]:
    """Another process holds the SQLite database's write lock (BEGIN IMMEDIATE) meanwhile."""
    path = sa.make_url(db_url).database
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.communicate("", timeout=10)  # end of input: it lets go and exits


def tempfailed(shop: Project, raw: bytes) -> str:
    """Pipe `raw` in: exit 75 and one line on standard error, which is returned."""
    result = shop.run("--now", AT, "inbound", "-", input=raw)  # type: ignore[arg-type]
    assert result.exit_code == 75, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "temporary: the MTA keeps the message and tries again" in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@sqlite_only
def test_a_locked_sqlite_database_is_a_temporary_failure(
    shop: Project, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock (BEGIN IMMEDIATE) past the busy timeout:
    exit 75, "database is locked", nothing recorded; once it lets go, the retried message
    is taken."""
    short_busy_timeout(monkeypatch)
    with write_lock_held(db_url):
        assert "database is locked" in tempfailed(shop, corpus(REPLY))
    assert count(db_url, inbound_messages) == 0
    assert count(db_url, events, events.c.type == "reply") == 0
    assert take(shop, corpus(REPLY))["class"] == "reply"


@sqlite_only
def test_a_read_only_sqlite_database_is_a_temporary_failure(shop: Project, db_url: str) -> None:
    """The database file can be read but not written (opened read-only, as a file without
    write permission or on a read-only mount is): exit 75, nothing recorded."""
    path = sa.make_url(db_url).database
    assert path is not None
    # SQLite's own read-only mode: file permissions would not stop a test run as root.
    use_database(shop, f"sqlite+pysqlite:///file:{path}?mode=ro&uri=true")
    assert "readonly database" in tempfailed(shop, corpus(REPLY))
    assert count(db_url, inbound_messages) == 0


@sqlite_only
def test_a_full_disk_is_a_temporary_failure(
    shop: Project, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite finds no room to grow the file (SQLITE_FULL: the database may not exceed the
    pages it has, as on a full disk): exit 75, nothing recorded."""
    store = open_store(db_url)
    with store.reading() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    store.close()
    short_busy_timeout(monkeypatch, f"PRAGMA max_page_count={pages}")
    long_reply = corpus(REPLY).replace(b"Hello,", b"Hello, " + b"so much to say " * 2000)
    assert "database or disk is full" in tempfailed(shop, long_reply)
    assert count(db_url, inbound_messages) == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_unreachable_postgresql_is_a_temporary_failure(shop: Project) -> None:
    """Nothing listens at the database's port: exit 75 with the driver's one line."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    use_database(shop, f"postgresql+psycopg://dripper@127.0.0.1:{port}/shop")
    assert "cannot open database" in tempfailed(shop, corpus(REPLY))


def test_a_failure_that_is_no_outage_exits_1(
    shop: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (anything but an unreachable, locked, full or read-only database) is exit 1,
    not 75: retrying would not help, and the MTA should not hold the message forever."""
    from dripper.services.inbound import Inbox

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Inbox, "take_in", broken)
    result = shop.run("--now", AT, "inbound", "-", input=corpus(REPLY))  # type: ignore[arg-type]
    assert result.exit_code == 1
    assert "internal error: RuntimeError: a bug" in result.stderr

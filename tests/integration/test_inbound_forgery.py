"""Forged mail that comes back, on SQLite and PostgreSQL, through the intake
(`Inbox.take_in`): a bounce or complaint acts only when it names what we sent (our
Message-ID, or a VERP id we issued and the store has), never on a customer's address
alone; a reply ends a sequence only when it comes from the address the email went to; and
however many ids a message carries, it costs a few indexed look-ups, made before the
write transaction."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.customers.model import CustomerData
from dripper.engine.inbound import parse_inbound
from dripper.engine.inbound_facts import MAX_LOOKUPS
from dripper.services.inbound import Inbox
from dripper.services.planning import Planner
from dripper.store import Store
from dripper.store.customers import _insert
from dripper.store.engine import BEGIN_MODE
from dripper.store.schema import (
    customers,
    enrollments,
    events,
    inbound_messages,
    outbox,
    suppressions,
)
from dripper.store.types import UTCDateTime
from tests.support.inbound import NOW, RETURN_PATH, SENT_AT, UNSUBSCRIBE, corpus, seed

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
ADA_LATEST = "z2lcjrzrugbiktzmusyajxah5i"  # the newest email to ada@example.org (the corpus)
GRACE = "jxs7qyukzrg3nel5q6cnnfprhi"  # the one email to grace@example.net

# Each forged report: the customer it names (mailed four days before), the line of its
# returned headers after which our Message-ID goes, the Message-ID of that customer's
# email, and what the report does when it names that email.
FORGED = {
    "forged-dsn-address-only.eml": (
        "shafi.g@example.com", b"To: shafi.g@example.com", "zil5frfmverqqh74npomixa2lm",
        "bounced",
    ),
    "forged-bounce-address-only.eml": (
        "tim.bl@example.co.uk", b"To: tim.bl@example.co.uk", "rrd7llwdgvkdvuzbpyfnlztxii",
        "bounced",
    ),
    "forged-arf-address-only.eml": (
        "sophie.w@example.org", b"To: sophie.w@example.org", "hvkywnzvudiisdfkowsmt4ggmy",
        "complained",
    ),
}  # fmt: skip


@pytest.fixture
def box(store: Store, db_url: str, tmp_path: Path) -> Inbox:
    """The intake of a shop with VERP on, whose database holds the corpus's sends."""
    seed(db_url)
    text = (SCAFFOLD / "config.toml").read_text()
    text = text.replace('return_path = ""', f'return_path = "{RETURN_PATH}"')
    text = text.replace('unsubscribe_mailto = ""', f'unsubscribe_mailto = "{UNSUBSCRIBE}"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = load_config(path)
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    return Inbox(config, store, Planner(config, store, campaigns), "acme.test")


def suppressed(store: Store) -> dict[str, str]:
    with store.reading() as conn:
        rows = conn.execute(sa.select(suppressions.c.email, suppressions.c.reason))
        return {r.email: r.reason for r in rows}


def recorded(store: Store) -> list[Any]:
    m = inbound_messages.c
    with store.reading() as conn:
        query = sa.select(m.kind, m.address, m.customer_id, m.outbox_id, m.reason)
        return list(conn.execute(query.order_by(m.id)))


# --- reports that name only an address -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_report_naming_only_a_customers_address_suppresses_nobody(
    store: Store, box: Inbox, name: str
) -> None:
    """A delivery report, an Exim-style notice and an ARF abuse report from a stranger,
    each naming only the address of a customer we mailed four days ago: recorded as
    unmatched with that address and why, belonging to no customer; nobody suppressed,
    nobody unsubscribed."""
    address = FORGED[name][0]
    taken = box.take_in(corpus(name), via="pipe", now=NOW)
    assert (taken.kind.value, taken.new, taken.address) == ("unmatched", True, address)
    assert suppressed(store) == {}
    [row] = recorded(store)
    assert (row.kind, row.address, row.customer_id, row.outbox_id) == (
        "unmatched",
        address,
        None,
        None,
    )
    assert "an address alone is no proof" in row.reason
    with store.reading() as conn:
        status = conn.execute(sa.select(customers.c.status).where(customers.c.email == address))
        assert status.scalar_one() == "subscribed"


@pytest.mark.parametrize("name", sorted(FORGED))
def test_the_same_report_naming_our_message_id_acts(store: Store, box: Inbox, name: str) -> None:
    """The same report with the returned email's Message-ID (one we generated and sent)
    suppresses the address it was sent to (a complaint: reason `complained`)."""
    address, after, delivery, reason = FORGED[name]
    raw = corpus(name)
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    ours = f"Message-ID: <{delivery}@acme.test>".encode()
    raw = raw.replace(after + newline, after + newline + ours + newline)
    taken = box.take_in(raw, via="pipe", now=NOW)
    assert taken.kind.value in ("bounce_hard", "complaint"), taken.reason
    assert suppressed(store) == {address: reason}


def test_a_verp_id_acts_only_when_we_issued_it(store: Store, box: Inbox) -> None:
    """The forged report sent to a customer's VERP address (an id we issued, found in the
    outbox) is a bounce of that email; to a VERP address of the same shape that we never
    issued, it is unmatched and suppresses nobody."""
    raw = corpus("forged-dsn-address-only.eml")
    ours = raw.replace(b"To: hello@acme.test", f"To: bounces+{GRACE}@bounce.acme.test".encode(), 1)
    invented = ours.replace(GRACE.encode(), b"a" * 26).replace(b"Message-Id: <", b"Message-Id: <x")
    assert box.take_in(invented, via="pipe", now=NOW).kind.value == "unmatched"
    assert suppressed(store) == {}
    taken = box.take_in(ours, via="pipe", now=NOW)
    assert (taken.kind.value, taken.address) == ("bounce_hard", "grace@example.net")
    assert suppressed(store) == {"grace@example.net": "bounced"}


# --- replies from someone else -----------------------------------------------------------------


def ada_enrollments(store: Store) -> list[str]:
    query = (
        sa.select(enrollments.c.status)
        .select_from(enrollments.join(customers, customers.c.id == enrollments.c.customer_id))
        .where(customers.c.email == "ada@example.org")
    )
    with store.reading() as conn:
        return sorted(conn.execute(query).scalars())


def test_a_reply_quoting_a_customers_email_from_another_address_ends_nothing(
    store: Store, box: Inbox
) -> None:
    """Mallory answers with Ada's Message-ID in In-Reply-To: recorded as unmatched, with
    Mallory's address and the mismatch in the reason; no `reply` event, Ada's sequence
    goes on. Ada's own reply to the same email then ends it."""
    taken = box.take_in(corpus("reply-from-another-address.eml"), via="pipe", now=NOW)
    assert (taken.kind.value, taken.address) == ("unmatched", "mallory@elsewhere.example")
    [row] = recorded(store)
    assert (row.kind, row.address, row.customer_id) == ("unmatched", taken.address, None)
    assert f"<{ADA_LATEST}@acme.test>, an email sent to another address" in row.reason
    assert ada_enrollments(store) == ["active", "active"]
    with store.reading() as conn:
        replies = conn.execute(sa.select(sa.func.count()).where(events.c.type == "reply"))
        assert replies.scalar_one() == 0
    assert box.take_in(corpus("reply-gmail-with-quote.eml"), via="pipe", now=NOW).kind == "reply"
    assert ada_enrollments(store) == ["exited", "exited"]


# --- bounded look-ups, outside the write transaction -------------------------------------------


OUTBOX_ROWS = 200_000
BUDGET = 40  # statements one message may cost; the old intake spent one per unknown id
LOOKUP = re.compile(r"\boutbox\.message_id\s*(?:IN\b|=|LIKE\b)", re.IGNORECASE)


def seed_outbox(store: Store, count: int) -> None:
    """`count` more sent emails to a customer of their own (one INSERT ... SELECT over a
    counter, on either database), Message-IDs of our shape, so that a scan of the outbox
    would cost what it does."""
    with store.transaction() as conn:
        _insert(conn, [CustomerData(email="bulk@example.com")], {}, SENT_AT)
        customer = conn.execute(
            sa.select(customers.c.id).where(customers.c.email == "bulk@example.com")
        ).scalar_one()
        enrollment = conn.execute(
            sa.insert(enrollments)
            .values(customer_id=customer, campaign="bulk", occurrence="bulk", enrolled_at=SENT_AT)
            .returning(enrollments.c.id)
        ).scalar_one()
        n = sa.select(sa.literal(1).label("i")).cte("n", recursive=True)
        n = n.union_all(sa.select((n.c.i + 1).label("i")).where(n.c.i < count))
        number = sa.cast(n.c.i + 1_000_000, sa.String)  # seed1000001@acme.test, ...
        at = sa.literal(SENT_AT, UTCDateTime)
        columns = {
            "enrollment_id": sa.literal(enrollment),
            "customer_id": sa.literal(customer),
            "campaign": sa.literal("bulk"),
            "occurrence": number,
            "step": sa.literal("one"),
            "due_at": at,
            "status": sa.literal("sent"),
            "message_id": sa.literal("seed") + number + sa.literal("@acme.test"),
            "next_attempt_at": at,
            "sent_at": at,
            "created_at": at,
            "updated_at": at,
        }
        select = sa.select(*(value.label(name) for name, value in columns.items()))
        conn.execute(sa.insert(outbox).from_select(list(columns), select.select_from(n)))
        total = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
        assert total > count


@dataclass
class Statement:
    sql: str
    parameters: Any
    writing: bool  # run in the write transaction (`Store.transaction`)
    lock_free: bool | None = None  # SQLite: another connection could take the write lock


@dataclass
class Work:
    statements: list[Statement] = field(default_factory=list)

    def lookups(self) -> list[Statement]:
        """The statements that look an email up by its Message-ID (or a prefix of it)."""
        return [s for s in self.statements if LOOKUP.search(s.sql)]


@contextmanager
def counted(store: Store) -> Iterator[Work]:
    """Every statement the store runs, with its parameter count and transaction; more
    than BUDGET stops the work (so an unbounded intake fails fast instead of scanning)."""
    work = Work()
    path = store.engine.url.database if store.dialect == "sqlite" else None

    def before(conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        options = conn.get_execution_options()
        if store.dialect == "sqlite":
            writing = options.get(BEGIN_MODE) == "IMMEDIATE"
        else:
            writing = not options.get("postgresql_readonly", False)
        statement = Statement(sql, parameters, writing)
        if path and LOOKUP.search(sql):
            statement.lock_free = _write_lock_free(path)
        work.statements.append(statement)
        if len(work.statements) > BUDGET:
            raise AssertionError(f"more than {BUDGET} statements for one message")

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield work
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)


def _write_lock_free(path: str) -> bool:
    """Whether another connection could begin writing now (the intake holds no lock)."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def many_ids_bounce(count: int) -> bytes:
    """A hard bounce to Grace's VERP address, followed by `count` VERP addresses of our
    shape that we never issued in every recipient header (as many as the parser reads of
    each: 20 values of 2,000 characters), and as many Message-IDs of our shape in
    References and In-Reply-To."""
    fake = [f"{i:026d}".replace("0", "q") for i in range(count)]
    verp = [f"bounces+{GRACE}@bounce.acme.test", *(f"bounces+{f}@bounce.acme.test" for f in fake)]
    lines = [
        "From: MAILER-DAEMON@mx.example.net",
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <many-ids@mx.example.net>",
        f"In-Reply-To: {' '.join(f'<{f}@acme.test>' for f in fake[:count // 2])}",
        f"References: {' '.join(f'<{f}@acme.test>' for f in fake)}",
    ]
    per_header = 45  # some 1,950 characters
    for n, start in enumerate(range(0, len(verp), per_header)):
        name = RECIPIENT_HEADERS[n % len(RECIPIENT_HEADERS)]
        lines.append(f"{name}: {', '.join(verp[start : start + per_header])}")
    body = (
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net"
        "\r\n\r\nFinal-Recipient: rfc822; grace@example.net\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n--b--\r\n"
    )
    lines.append('Content-Type: multipart/report; report-type=delivery-status; boundary="b"')
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def test_thousands_of_ids_cost_a_few_lookups_outside_the_write_lock(
    store: Store, box: Inbox
) -> None:
    """A bounce carrying over 4,000 VERP ids and 6,000 Message-IDs of our shape, against
    an outbox of 200,000 emails: at most MAX_LOOKUPS ids of each kind are looked up, by
    the Message-ID's unique index (no LIKE), in at most three statements, all before the
    write transaction begins (on SQLite another connection could take the write lock
    meanwhile); Grace's VERP id, named first, still makes it her hard bounce."""
    seed_outbox(store, OUTBOX_ROWS)
    raw = many_ids_bounce(6_000)
    assert len(parse_inbound(raw, return_path=RETURN_PATH).verp_ids) > 4_000
    with counted(store) as work:
        taken = box.take_in(raw, via="pipe", now=NOW)
    assert (taken.kind.value, taken.address) == ("bounce_hard", "grace@example.net")
    assert suppressed(store) == {"grace@example.net": "bounced"}
    lookups = work.lookups()
    assert 1 <= len(lookups) <= 3
    assert not any(re.search(r"\bLIKE\b", s.sql, re.IGNORECASE) for s in work.statements)
    assert all(len(s.parameters) <= 2 * MAX_LOOKUPS for s in lookups)
    assert not any(s.writing for s in lookups)
    if store.dialect == "sqlite":
        assert all(s.lock_free for s in lookups)
    assert any(s.writing for s in work.statements)  # the record and the suppression


def test_the_ids_a_message_names_are_never_scanned_for_by_prefix(store: Store, box: Inbox) -> None:
    """Five hundred unknown VERP ids and no known one: still a bounded handful of
    statements, each id looked up whole (`<id>@<domain>`), the message unmatched."""
    raw = many_ids_bounce(500).replace(f"bounces+{GRACE}@".encode(), b"somebody@")
    with counted(store) as work:
        taken = box.take_in(raw, via="pipe", now=NOW)
    assert taken.kind.value == "unmatched"
    assert len(work.lookups()) <= 2
    assert not any(re.search(r"\bLIKE\b", s.sql, re.IGNORECASE) for s in work.statements)
    assert suppressed(store) == {}


def test_a_replys_lookups_are_made_before_the_write_transaction(store: Store, box: Inbox) -> None:
    """Ada's reply: which email it answers is read in a read transaction (on SQLite,
    another connection could take the write lock meanwhile); only recording it and ending
    her sequence write."""
    with counted(store) as work:
        taken = box.take_in(corpus("reply-gmail-with-quote.eml"), via="pipe", now=NOW)
    assert taken.kind.value == "reply"
    lookups = work.lookups()
    assert lookups
    assert not any(s.writing for s in lookups)
    if store.dialect == "sqlite":
        assert all(s.lock_free for s in lookups)
    assert any(s.writing for s in work.statements)


def test_a_customer_with_200000_emails_is_found_by_their_newest_email(
    store: Store, box: Inbox
) -> None:
    """Mail from a customer we sent 200,000 emails (no thread headers: matched by the
    sender's address, weakly) reads their newest few emails by the customer's index; on
    SQLite the plan never walks the outbox by status, as a query for `status = 'sent'`
    would (every email ever sent)."""
    seed_outbox(store, OUTBOX_ROWS)
    raw = b"From: bulk@example.com\r\nTo: hello@acme.test\r\nSubject: Hello\r\n\r\nHi!\r\n"
    with counted(store) as work:
        taken = box.take_in(raw, via="pipe", now=NOW)
    assert (taken.kind.value, taken.address) == ("reply", "bulk@example.com")
    [by_sender] = [s for s in work.statements if "outbox.sent_at >=" in s.sql]
    assert re.search(r"\bLIMIT\b", by_sender.sql)
    assert not by_sender.writing
    if store.dialect == "sqlite":
        with store.reading() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {by_sender.sql}", by_sender.parameters)
            steps = " / ".join(row[3] for row in plan)
        assert "ix_outbox_claim" not in steps, steps
        assert "SCAN outbox" not in steps, steps

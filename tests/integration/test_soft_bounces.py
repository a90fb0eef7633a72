"""DESIGN 12's soft-bounce rule on both databases, through the listening service's intake
(`Inbox.take_in`): `[bounces] soft_limit` soft-bounced **emails in a row**, with no open,
click or reply by a person in between, suppress the address (reason `bounced`), however far
apart the emails are; several notices about one email count once. And the hard side: a
notice that says the delivery failed suppresses without a code, a 5.7.x never does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.customers.model import CustomerData
from dripper.engine.model import NewEnrollment, PlannedSend
from dripper.services.inbound import Inbox
from dripper.services.planning import Planner
from dripper.store import Store, bulk
from dripper.store import inbound as stored
from dripper.store.customers import _insert
from dripper.store.schema import customers, inbound_messages, outbox, suppressions
from dripper.store.tracking import StoredHit, insert_hits

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
FLUFL = Path(__file__).resolve().parents[1] / "data" / "inbound" / "flufl"
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # a Monday: the first weekly email goes out
ADA = "ada@example.org"
WEEK = timedelta(days=7)


def inbox(store: Store, tmp_path: Path, *, soft_limit: int | None = None) -> Inbox:
    """The intake, configured from a config file: our VERP return path, and `[bounces]
    soft_limit` as given (None: the scaffold's line, the default 3)."""
    text = (SCAFFOLD / "config.toml").read_text()
    text = text.replace('return_path = ""', 'return_path = "bounces@bounce.acme.test"')
    if soft_limit is not None:
        text = re.sub(r"(?m)^soft_limit = \d+", f"soft_limit = {soft_limit}", text)
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.bounces.soft_limit == (soft_limit or 3)
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    assert not problems
    return Inbox(config, store, Planner(config, store, campaigns), "acme.test")


def weekly_emails(store: Store, count: int, *, every: timedelta = WEEK) -> list[str]:
    """Ada, and `count` emails of a newsletter sent to her `every` apart from T0: their
    delivery ids, oldest first."""
    ids = [f"weekly{n:02d}ada0delivery" for n in range(count)]
    with store.transaction() as conn:
        _insert(conn, [CustomerData(email=ADA)], {}, T0)
        customer = conn.execute(sa.select(customers.c.id)).scalar_one()
        sends = tuple(PlannedSend(f"issue-{n}", T0 + n * every, 0) for n in range(count))
        enrollment = NewEnrollment("value-newsletter", "weekly", T0, None, sends)
        bulk.save_enrollments(conn, [(customer, enrollment)], now=T0)
        for n, delivery in enumerate(ids):
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.step == f"issue-{n}")
                .values(status="sent", sent_at=T0 + n * every, message_id=f"{delivery}@acme.test")
            )
    return ids


def sent_at(n: int, every: timedelta = WEEK) -> datetime:
    return T0 + n * every


_notices = iter(range(10**6))


def soft_bounce(delivery: str, *, action: str = "delayed", status: str = "4.2.2") -> bytes:
    """An RFC 3464 report about one of our emails, to its VERP address: by default a delay
    (mailbox full, still being tried). Each call is a new message (its own Message-ID)."""
    return (
        "From: MAILER-DAEMON@mx.example.org\r\n"
        f"To: bounces+{delivery}@bounce.acme.test\r\n"
        "Subject: Delayed Mail (still being retried)\r\n"
        f"Message-ID: <notice{next(_notices)}@mx.example.org>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery report.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {ADA}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{delivery}@acme.test>\r\nTo: {ADA}\r\n"
        "--b--\r\n"
    ).encode()


def reply(delivery: str) -> bytes:
    """Ada answering one of our emails."""
    return (
        f"From: Ada <{ADA}>\r\nTo: hello@acme.test\r\nSubject: Re: your newsletter\r\n"
        f"Message-ID: <reply{next(_notices)}@example.org>\r\n"
        f"In-Reply-To: <{delivery}@acme.test>\r\n"
        "\r\nLovely, thank you!\r\n"
    ).encode()


def take(box: Inbox, raw: bytes, at: datetime, kind: str = "bounce_soft") -> None:
    taken = box.take_in(raw, via="pipe", now=at)
    assert (taken.kind.value, taken.new) == (kind, True), taken.reason


def suppressed(store: Store) -> dict[str, str]:
    with store.reading() as conn:
        rows = conn.execute(sa.select(suppressions.c.email, suppressions.c.reason))
        return {r.email: r.reason for r in rows}


def hit(store: Store, delivery: str, kind: str, at: datetime, *, machine: bool) -> None:
    """An open, click or one-click answer on one of Ada's emails, a person's or a machine's."""
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(outbox.c.id, outbox.c.customer_id, outbox.c.campaign, outbox.c.step)
            .where(outbox.c.message_id == f"{delivery}@acme.test")
        ).one()
        stored_hit = StoredHit(row.id, row.customer_id, kind, at, machine, None, "Mozilla/5.0",
                               {}, row.campaign, row.step, 0)  # fmt: skip
        insert_hits(conn, [stored_hit])


@pytest.mark.parametrize("every", [WEEK, timedelta(days=30)], ids=["weekly", "monthly"])
def test_three_soft_bounced_emails_in_a_row_suppress_however_far_apart(
    store: Store, tmp_path: Path, every: timedelta
) -> None:
    """A weekly (or monthly) sender: each email soft-bounces a few hours after it goes out;
    the first two leave Ada subscribed, the third suppresses her (reason `bounced`), though
    no 14 days hold three of them."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 3, every=every)
    for n, delivery in enumerate(emails):
        take(box, soft_bounce(delivery), sent_at(n, every) + timedelta(hours=4))
        assert suppressed(store) == ({ADA: "bounced"} if n == 2 else {})


def test_notices_about_one_email_count_once(store: Store, tmp_path: Path) -> None:
    """Two delay notices and the final expiry (4.4.7) of one email, over five days, are one
    soft-bounced email: Ada stays subscribed until two more emails soft-bounce."""
    box = inbox(store, tmp_path)
    first, second, third = weekly_emails(store, 3)
    take(box, soft_bounce(first), sent_at(0) + timedelta(hours=4))
    take(box, soft_bounce(first), sent_at(0) + timedelta(days=1))
    take(box, soft_bounce(first, action="failed", status="4.4.7"), sent_at(0) + timedelta(days=5))
    take(box, soft_bounce(second), sent_at(1) + timedelta(hours=4))
    take(box, soft_bounce(second), sent_at(1) + timedelta(hours=9))
    assert suppressed(store) == {}
    take(box, soft_bounce(third), sent_at(2) + timedelta(hours=4))
    assert suppressed(store) == {ADA: "bounced"}


@pytest.mark.parametrize("kind", ["open", "click", "answer"])
def test_a_persons_open_or_click_in_between_resets_the_count(
    store: Store, tmp_path: Path, kind: str
) -> None:
    """Two emails soft-bounce, then Ada opens (clicks, answers) an earlier email: the row
    starts again, and only three more soft-bounced emails after that suppress her."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 6)
    for n in (1, 2):
        take(box, soft_bounce(emails[n]), sent_at(n) + timedelta(hours=4))
    hit(store, emails[0], kind, sent_at(2) + timedelta(days=2), machine=False)
    for n in (3, 4):
        take(box, soft_bounce(emails[n]), sent_at(n) + timedelta(hours=4))
        assert suppressed(store) == {}
    take(box, soft_bounce(emails[5]), sent_at(5) + timedelta(hours=4))
    assert suppressed(store) == {ADA: "bounced"}


def test_a_machines_open_is_no_sign_of_life(store: Store, tmp_path: Path) -> None:
    """A privacy proxy's prefetch (machine = true) in between resets nothing."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 3)
    for n in (0, 1):
        take(box, soft_bounce(emails[n]), sent_at(n) + timedelta(hours=4))
    hit(store, emails[1], "open", sent_at(1) + timedelta(seconds=3), machine=True)
    take(box, soft_bounce(emails[2]), sent_at(2) + timedelta(hours=4))
    assert suppressed(store) == {ADA: "bounced"}


def test_an_open_of_the_bounced_email_itself_takes_it_out_of_the_row(
    store: Store, tmp_path: Path
) -> None:
    """An email that was delayed, then delivered and opened, is no bounced email: the
    delay notice of the second email, then her open of it, leave one email in the row."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 4)
    take(box, soft_bounce(emails[0]), sent_at(0) + timedelta(hours=4))
    take(box, soft_bounce(emails[1]), sent_at(1) + timedelta(hours=4))
    hit(store, emails[1], "open", sent_at(1) + timedelta(days=1), machine=False)
    take(box, soft_bounce(emails[2]), sent_at(2) + timedelta(hours=4))
    take(box, soft_bounce(emails[3]), sent_at(3) + timedelta(hours=4))
    assert suppressed(store) == {}


def test_a_reply_in_between_resets_the_count(store: Store, tmp_path: Path) -> None:
    """Two soft-bounced emails, then Ada replies to an earlier one: a sign of life, the row
    starts again."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 5)
    for n in (1, 2):
        take(box, soft_bounce(emails[n]), sent_at(n) + timedelta(hours=4))
    take(box, reply(emails[0]), sent_at(2) + timedelta(days=1), kind="reply")
    take(box, soft_bounce(emails[3]), sent_at(3) + timedelta(hours=4))
    take(box, soft_bounce(emails[4]), sent_at(4) + timedelta(hours=4))
    assert suppressed(store) == {}


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_the_limit_comes_from_bounces_soft_limit(
    store: Store, tmp_path: Path, limit: int
) -> None:
    """`[bounces] soft_limit = N`: the N-th soft-bounced email in a row suppresses, not
    the one before."""
    box = inbox(store, tmp_path, soft_limit=limit)
    emails = weekly_emails(store, limit)
    for n, delivery in enumerate(emails):
        take(box, soft_bounce(delivery), sent_at(n) + timedelta(hours=4))
        assert suppressed(store) == ({ADA: "bounced"} if n == limit - 1 else {})


def test_soft_bounces_without_an_email_count_once_a_day(store: Store) -> None:
    """Soft bounces whose email the store no longer has (none recorded, or its row gone):
    one per UTC day they came back, after the last sign of life; two on one day count once."""
    weekly_emails(store, 1)
    with store.transaction() as conn:
        customer = conn.execute(sa.select(customers.c.id)).scalar_one()
        rows = [(None, T0), (987654, T0 + timedelta(hours=5)), (None, T0 + timedelta(days=9))]
        for i, (gone, at) in enumerate(rows):
            conn.execute(sa.insert(inbound_messages).values(
                message_key=f"orphan{i}", kind="bounce_soft", received_at=at, via="pipe",
                customer_id=customer, outbox_id=gone, address=ADA, weak=False,
            ))  # fmt: skip
        assert stored.soft_bounces_in_a_row(conn, ADA, customer) == 2
        assert stored.soft_bounces_in_a_row(conn, "someone@else.example", customer) == 0
    hit(store, "weekly00ada0delivery", "click", T0 + timedelta(days=1), machine=False)
    with store.reading() as conn:
        assert stored.soft_bounces_in_a_row(conn, ADA, customer) == 1


def test_a_notice_of_failure_without_a_code_suppresses(store: Store, tmp_path: Path) -> None:
    """A real notice from newmail.ru's qmail ("we were not able to deliver your message",
    the account over quota, no status code) is a hard bounce: Ada is suppressed at once."""
    box = inbox(store, tmp_path)
    [delivery] = weekly_emails(store, 1)
    raw = (FLUFL / "newmailru_01.txt").read_bytes()
    line = raw.index(b"\n") + 1  # after its mbox "From " line, as our MTA delivers it
    raw = raw[:line] + f"X-Original-To: bounces+{delivery}@bounce.acme.test\n".encode() + raw[line:]
    take(box, raw, sent_at(0) + timedelta(hours=1), kind="bounce_hard")
    assert suppressed(store) == {ADA: "bounced"}


def test_a_policy_rejection_never_suppresses(store: Store, tmp_path: Path) -> None:
    """A report of `Action: failed` with 5.7.1 (refused as spam) is recorded as a hard
    bounce with its status and suppresses nobody, however many come; a 5.1.1 does."""
    box = inbox(store, tmp_path)
    emails = weekly_emails(store, 4)
    for n in range(3):
        raw = soft_bounce(emails[n], action="failed", status="5.7.1")
        take(box, raw, sent_at(n) + timedelta(hours=1), kind="bounce_hard")
    assert suppressed(store) == {}
    take(box, soft_bounce(emails[3], action="failed", status="5.1.1"), sent_at(3),
         kind="bounce_hard")  # fmt: skip
    assert suppressed(store) == {ADA: "bounced"}

"""The inbound classifier's rules for reports (RFC 3464, RFC 5965), VERP and the lookups,
on small hand-made messages; and the bounds that keep hostile input cheap."""

from __future__ import annotations

import time

import pytest

from dripper.engine.inbound import MAX_TEXT, InboundClass, parse_inbound
from tests.unit.test_inbound_rules import (
    ADA,
    BOB,
    REPLY_TO_ADA,
    RETURN_PATH,
    mail,
    verdict,
)


def dsn(*blocks: str, returned: str = "", to: str = "hello@acme.test") -> bytes:
    """An RFC 3464 report with these per-recipient blocks and, optionally, returned headers."""
    parts = [
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery report.\r\n",
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        + "\r\n\r\n".join(b.replace("\n", "\r\n") for b in blocks)
        + "\r\n",
    ]
    if returned:
        parts.append("--b\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned + "\r\n")
    head = (
        "From: MAILER-DAEMON@mx.example\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    )
    return (head + "".join(parts) + "--b--\r\n").encode()


# --- delivery reports ----------------------------------------------------------------------------


RETURNED_BOB = f"Message-ID: <{BOB.message_id}>\nTo: bob@example.com"


def test_a_failed_action_with_a_temporary_status_is_soft() -> None:
    """Action: failed with 4.4.7 (expired): a soft bounce, the Status decides."""
    raw = dsn(
        "Final-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 4.4.7",
        returned=RETURNED_BOB,
    )
    found = verdict(raw)
    assert (found.kind, found.status, found.weak) == (InboundClass.BOUNCE_SOFT, "4.4.7", False)


@pytest.mark.parametrize(
    ("action", "kind"),
    [("failed", InboundClass.BOUNCE_HARD), ("delayed", InboundClass.BOUNCE_SOFT)],
)
def test_without_a_status_the_action_decides(action: str, kind: InboundClass) -> None:
    """No Status field: failed is hard, delayed is soft."""
    raw = dsn(f"Final-Recipient: rfc822; bob@example.com\nAction: {action}", returned=RETURNED_BOB)
    assert verdict(raw).kind is kind


def test_a_report_of_success_is_no_bounce() -> None:
    """A DSN that only says delivered is unmatched, whatever it names."""
    raw = dsn("Final-Recipient: rfc822; bob@example.com\nAction: delivered\nStatus: 2.0.0")
    assert verdict(raw).kind is InboundClass.UNMATCHED


def test_the_worst_recipient_of_a_report_decides() -> None:
    """One recipient delayed, one failed: hard, for the failed one."""
    raw = dsn(
        "Final-Recipient: rfc822; ada@example.org\nAction: delayed\nStatus: 4.2.2",
        "Final-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 5.1.1",
        returned=RETURNED_BOB,
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.status) == (InboundClass.BOUNCE_HARD, BOB, "5.1.1")


def test_the_verp_id_names_the_delivery_when_no_message_is_returned() -> None:
    """No returned headers, a final recipient we never mailed: the VERP address decides."""
    raw = dsn(
        "Final-Recipient: rfc822; forwarded@elsewhere.example\nAction: failed\nStatus: 5.1.1",
        to=f"BOUNCES+{BOB.delivery_id.upper()}@Bounce.Acme.Test",
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.address, found.weak) == (
        InboundClass.BOUNCE_HARD,
        BOB,
        BOB.email,
        False,
    )


def test_the_returned_message_id_beats_the_verp_id() -> None:
    """The returned Message-ID is the first thing a report is matched by."""
    raw = dsn(
        "Final-Recipient: rfc822; ada@example.org\nAction: failed\nStatus: 5.1.1",
        returned=f"Message-ID: <{ADA.message_id}>",
        to=f"bounces+{BOB.delivery_id}@bounce.acme.test",
    )
    assert verdict(raw).delivery == ADA


# --- feedback reports ------------------------------------------------------------------------


def arf(feedback: str, returned: str) -> bytes:
    return mail(
        "From: feedback@fbl.example",
        "To: fbl@acme.test",
        "Subject: Abuse report",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"',
        body=f"--f\nContent-Type: message/feedback-report\n\n{feedback}\n\n"
        f"--f\nContent-Type: message/rfc822\n\n{returned}\n\nHello\n--f--\n",
    )


def test_a_complaint_without_a_message_id_is_matched_by_the_returned_verp() -> None:
    """The returned message's Return-Path carries our VERP id."""
    raw = arf(
        "Feedback-Type: abuse",
        f"Return-Path: <bounces+{ADA.delivery_id}@bounce.acme.test>\nTo: redacted@isp.example",
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.weak) == (InboundClass.COMPLAINT, ADA, False)


def test_a_complaint_naming_only_its_recipient_is_unmatched() -> None:
    """Original-Rcpt-To alone, an address we mailed recently, names no email of ours: the
    report is unmatched (anyone can write one), recorded with that address."""
    found = verdict(arf("Feedback-Type: abuse\nOriginal-Rcpt-To: bob@example.com", "Subject: Hi"))
    assert (found.kind, found.delivery, found.address) == (
        InboundClass.UNMATCHED,
        None,
        "bob@example.com",
    )
    assert "nothing suppressed" in found.reason


def test_a_not_spam_report_is_no_complaint() -> None:
    """Only abuse-shaped feedback types complain; not-spam is unmatched."""
    raw = arf("Feedback-Type: not-spam", f"Message-ID: <{ADA.message_id}>")
    assert verdict(raw).kind is InboundClass.UNMATCHED


# --- VERP and lookups ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "ids"),
    [
        (f"bounces+{ADA.delivery_id}@bounce.acme.test", (ADA.delivery_id,)),
        (f"Bounces+{ADA.delivery_id.upper()}@BOUNCE.acme.test", (ADA.delivery_id,)),
        ("bounces+short@bounce.acme.test", ()),
        ("bounces+not_alnum_12345@bounce.acme.test", ()),
        (f"bounces+{ADA.delivery_id}@bounce.other.test", ()),
        (f"xbounces+{ADA.delivery_id}@bounce.acme.test", ()),
    ],
)
def test_verp_ids_are_read_from_our_return_path_only(to: str, ids: tuple[str, ...]) -> None:
    """Local part and domain match case-insensitively; the id is [a-z0-9]{8,64}."""
    assert parse_inbound(mail(f"To: {to}"), return_path=RETURN_PATH).verp_ids == ids


def test_without_a_return_path_there_are_no_verp_ids() -> None:
    """VERP is read only when `[bounces] return_path` is configured."""
    assert parse_inbound(mail(f"To: bounces+{ADA.delivery_id}@bounce.acme.test")).verp_ids == ()


def test_the_lookups_list_what_a_report_names() -> None:
    """A report's returned Message-ID and its VERP id are looked up; its recipients never
    are (an address alone decides nothing): only the sender's address is."""
    inbound = parse_inbound(
        dsn(
            "Final-Recipient: rfc822; Bob@Example.com\nAction: failed",
            returned="Message-ID: <x1x1x1x1x1@acme.test>",
            to=f"bounces+{BOB.delivery_id}@bounce.acme.test",
        ),
        return_path=RETURN_PATH,
    )
    assert inbound.referenced_ids() == ("x1x1x1x1x1@acme.test",)
    assert inbound.delivery_ids() == (BOB.delivery_id,)
    assert inbound.addresses() == ("mailer-daemon@mx.example",)


# --- bounds --------------------------------------------------------------------------------------


def test_a_huge_header_count_is_bounded() -> None:
    """Fifty thousand To headers are read, and only a few kept."""
    raw = mail(*(f"To: user{i}@example.org" for i in range(50_000)), "From: a@example.org")
    inbound = parse_inbound(raw)
    assert 0 < len(inbound.recipients) <= 20


def test_deep_nesting_does_not_recurse_without_bound() -> None:
    """A thousand nested multiparts give the message's headers, not a RecursionError."""
    nested = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(1000)
    )
    inbound = parse_inbound(f"From: a@example.org\r\n{nested}Hello\r\n".encode())
    assert inbound.sender == "a@example.org"
    assert "MIME parser (Compat32): RecursionError" in inbound.problems


def test_the_reply_text_is_bounded() -> None:
    """A megabyte of reply keeps at most MAX_TEXT characters of text and of quote."""
    inbound = parse_inbound(mail(*REPLY_TO_ADA, body="word " * 200_000 + "\n> quoted\n" * 50_000))
    assert 0 < len(inbound.text) <= MAX_TEXT
    assert len(inbound.quoted) <= MAX_TEXT


def test_encoded_words_in_unknown_charsets_do_not_raise() -> None:
    """Subjects are decoded (RFC 2047); a charset nobody knows leaves the text readable."""
    assert parse_inbound(mail("Subject: =?utf-8?q?Caf=C3=A9?= ok")).subject == "Café ok"
    assert parse_inbound(mail("Subject: =?x-nothing?q?Caf=E9?=")).subject


def test_thousands_of_parts_are_read_leniently() -> None:
    """Twenty thousand MIME parts go to the fast lenient parser, and only 200 are walked."""
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    inbound = parse_inbound(raw + part * 20_000 + b"--b--\r\n")
    assert inbound.sender == "a@example.org"
    assert any("read leniently" in p for p in inbound.problems)
    assert any("more than 200 MIME parts" in p for p in inbound.problems)


@pytest.mark.parametrize(
    "body",
    [
        "<" * 300_000,
        "<script>" * 40_000,
        "<br" * 100_000,
    ],
)
def test_hostile_html_is_read_in_one_pass(body: str) -> None:
    """Unclosed tags cost one pass (a quadratic scan of these would take minutes, not 3 s)."""
    raw = mail("From: a@example.org", "Content-Type: text/html", body=body)
    started = time.perf_counter()
    parse_inbound(raw)
    assert time.perf_counter() - started < 3


def test_a_long_line_is_never_tried_as_an_attribution() -> None:
    """ "On ... wrote" repeated over a megabyte is one line of text, read in one pass."""
    raw = mail("From: a@example.org", body="On " + " wrote" * 200_000 + ":\nx")
    started = time.perf_counter()
    inbound = parse_inbound(raw)
    assert time.perf_counter() - started < 3
    assert inbound.quoted == ""

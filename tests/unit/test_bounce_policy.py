"""DESIGN 12's bounce policy in the classifier: hard when a notice reports a final failure
(with a 5.x.x code or none at all), soft while delivery is still being tried or when the
final failure carries a 4.x.x code.

First against real notices from many MTAs: flufl.bounce's own sample corpus
(tests/data/inbound/flufl/, with manifest.json saying what flufl.bounce's tests expect of
each, permanent or temporary). Then each rule on small hand-made notices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dripper.engine.inbound import (
    DeliveryRef,
    InboundClass,
    Known,
    Severity,
    Verdict,
    classify,
    parse_inbound,
)
from dripper.engine.inbound_facts import DsnRecipient

FLUFL = Path(__file__).parents[1] / "data" / "inbound" / "flufl"
MANIFEST: dict[str, Any] = json.loads((FLUFL / "manifest.json").read_text())
SAMPLES: dict[str, dict[str, Any]] = MANIFEST["samples"]
RETURN_PATH = "bounces@bounce.acme.test"

# The samples name list members of 2000-2009, never a customer of ours. As in production,
# the notice reaches our VERP return path: the MTA adds the envelope recipient
# (`X-Original-To`), and that VERP id names the one email of ours below. So every sample is
# matched, and what is tested is the hard/soft decision alone.
OURS = DeliveryRef("flufl0sample0delivery", "flufl0sample0delivery@acme.test", 1,
                   "someone@example.org", "welcome", "welcome")  # fmt: skip
KNOWN = Known.of([OURS])

HARD, SOFT = InboundClass.BOUNCE_HARD, InboundClass.BOUNCE_SOFT
BY_FLUFL = {"permanent": HARD, "temporary": SOFT}

# Where dripper's class differs from flufl.bounce's expectation, and why. flufl.bounce
# answers "which addresses failed", not "is this address gone", so its "permanent" is
# every final failure; DESIGN 12 decides otherwise in these cases.
DEVIATIONS: dict[str, tuple[InboundClass, str]] = {
    # DESIGN 12: a final failure with a 4.x.x status is soft (it expired on a temporary
    # condition, which says nothing permanent about the address).
    "dsn_02.txt": (SOFT, "X.400 gateway DSN: Action failed, Status 4.4.7 (message timed out)"),
    "yahoo_01.txt": (SOFT, "qmail at Yahoo: 'not going to try again' after #4.4.1 (no SMTP)"),
    # Not recognised as a bounce at all: a gateway's notice shaped like a person's reply
    # (Subject "RE: <our subject> : non remis (delivery failed)", From an ordinary address,
    # no bounce headers). Reading "RE:" mail as a bounce would turn people's replies into
    # bounces; the address is left alone, never suppressed by mistake.
    "simple_20.txt": (InboundClass.UNMATCHED, "a reply-shaped gateway notice"),
}


def _as_ours(name: str) -> bytes:
    """The sample as our VERP mailbox receives it: with the envelope recipient the MTA adds
    (after an mbox "From " line, which must stay first)."""
    raw = (FLUFL / name).read_bytes()
    added = f"X-Original-To: bounces+{OURS.delivery_id}@bounce.acme.test\n".encode()
    if raw.startswith(b"From "):
        end = raw.index(b"\n") + 1
        return raw[:end] + added + raw[end:]
    return added + raw


def _verdict(raw: bytes, known: Known = KNOWN) -> Verdict:
    return classify(parse_inbound(raw, return_path=RETURN_PATH), known)


def test_the_manifest_lists_every_sample_with_flufls_expectation() -> None:
    """Every sample file is in the manifest and back; at least 40 from many MTAs, both kinds."""
    files = sorted(p.name for p in FLUFL.iterdir() if p.suffix == ".txt")
    assert files == sorted(SAMPLES)
    assert len(SAMPLES) >= 40
    assert {s["failure"] for s in SAMPLES.values()} == {"permanent", "temporary"}
    assert len({s["detector"] for s in SAMPLES.values()}) >= 15
    assert set(DEVIATIONS) <= set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_real_notice_is_hard_or_soft_as_flufl_bounce_expects(name: str) -> None:
    """A permanent failure in flufl.bounce's corpus is a hard bounce, a temporary one (a
    delay warning) soft, each matched to our email by its VERP id; DEVIATIONS say where
    and why DESIGN 12 decides otherwise."""
    sample = SAMPLES[name]
    expected = DEVIATIONS.get(name, (BY_FLUFL[sample["failure"]], ""))[0]
    verdict = _verdict(_as_ours(name))
    assert verdict.kind is expected, f"{sample['detector']}: {verdict.reason}"
    if expected in (HARD, SOFT):
        assert verdict.delivery == OURS
        assert not (verdict.status or "").startswith("5.7.")  # policy: none in this corpus


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_real_notice_naming_nothing_of_ours_is_no_bounce(name: str) -> None:
    """Without our VERP id and with no email of ours known, no sample is a bounce: a
    notice about someone else's mail suppresses nobody."""
    raw = (FLUFL / name).read_bytes()
    assert _verdict(raw, Known()).kind not in (HARD, SOFT)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_real_notice_naming_only_an_address_we_mailed_is_no_bounce(name: str) -> None:
    """Without our VERP id, a notice is no bounce even when the store knows a recent email
    of ours to every address it names: an address alone is what anyone can write, so it
    neither suppresses nor counts as a soft bounce."""
    inbound = parse_inbound((FLUFL / name).read_bytes(), return_path=RETURN_PATH)
    named = [
        *(a for r in (inbound.report.recipients if inbound.report else ()) for a in r.addresses),
        *(inbound.bounce.addresses if inbound.bounce else ()),
    ]
    known = Known(by_address={a: OURS for a in named})
    assert classify(inbound, known).kind not in (HARD, SOFT)


def test_most_permanent_failures_in_the_corpus_give_no_status_code() -> None:
    """The corpus tests what DESIGN 12 changed: most of its final failures carry no
    enhanced status code, and they are hard all the same."""
    hard = [
        name
        for name, s in SAMPLES.items()
        if s["failure"] == "permanent" and name not in DEVIATIONS
    ]
    uncoded = [name for name in hard if _verdict(_as_ours(name)).status is None]
    assert len(uncoded) >= len(hard) // 2
    assert all(_verdict(_as_ours(name)).kind is HARD for name in uncoded)


# --- the rules, one by one, on hand-made notices ------------------------------------------


def notice(body: str, *, subject: str = "failure notice", extra: str = "") -> bytes:
    """A non-standard notice from a mailer-daemon to our VERP address about our email."""
    head = (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: bounces+{OURS.delivery_id}@bounce.acme.test\r\n"
        f"Subject: {subject}\r\n{extra}"
        "Message-ID: <n1@mx.example.net>\r\n\r\n"
    )
    return (head + body.replace("\n", "\r\n")).encode()


def _said(raw: bytes) -> tuple[InboundClass, str | None]:
    found = _verdict(raw)
    assert found.delivery == OURS, found.reason
    return found.kind, found.status


@pytest.mark.parametrize(
    "body",
    [
        "Your message could not be delivered to someone@example.org.",
        "Unable to deliver message to the following address(es).\n<someone@example.org>:",
        "Delivery to the following recipients failed.\n\n   someone@example.org",
        "This Message was undeliverable due to the following reason:\nhost not responding",
        "Your message to someone@example.org has NOT been delivered.",
        "Delivery failed 20 attempts: someone@example.org",
        "I'm not going to try again; this message has been in the queue too long.",
        "The message will not be retried.",
        "Did not reach the following recipient: someone@example.org",
    ],
)
def test_a_notice_that_says_the_delivery_failed_is_hard_without_a_code(body: str) -> None:
    """No status code at all, but it says the delivery failed (or will not be tried again):
    hard (DESIGN 12; it was soft before, and such addresses stayed subscribed)."""
    assert _said(notice(body)) == (HARD, None)


def test_a_failure_for_a_full_mailbox_without_a_code_is_hard() -> None:
    """"Could not be delivered ... mailbox is full" and no code: a final failure, hard; only
    a 4.x.x code makes a final failure soft."""
    body = "Your message could not be delivered.\n<someone@example.org>: mailbox is full"
    assert _said(notice(body)) == (HARD, None)


def test_a_final_failure_with_a_temporary_code_is_soft() -> None:
    """Yahoo's "Message expired after 3 days: 451 ..." and "(#4.4.1)": soft, the code decides."""
    assert _said(notice("Sorry, we were unable to deliver your message.\n"
                        "Message expired after 3 days: 451 temporarily deferred")) == (SOFT, None)
    assert _said(notice("Unable to deliver message. (#4.4.1)")) == (SOFT, "4.4.1")


@pytest.mark.parametrize(
    "body",
    [
        "THIS IS A WARNING MESSAGE ONLY.\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\n"
        "Your message could not be delivered for more than 4 hour(s).",
        "A message that you sent has not yet been delivered to one or more of its recipients."
        "\nEventually the mail delivery software will give up.",
        "Delivery to the following recipient has been delayed:\n\n   someone@example.org",
        "Your message could not be delivered to the following recipients:\n"
        "someone@example.org\nDelivery attempts will continue to be made for 5 day(s).",
        "We will continue to try to deliver your message over the next few days.",
        "Message will be retried for 2 more day(s).",
    ],
)
def test_a_notice_that_still_tries_is_soft(body: str) -> None:
    """A warning is soft, even when it says "could not be delivered" so far or what will
    happen when trying ends ("will give up")."""
    assert _said(notice(body))[0] is SOFT


def test_a_warning_beats_a_permanent_looking_code() -> None:
    """Still trying is soft whatever code it quotes, as `Action: delayed` is."""
    body = "This is a warning only.\nhost said: 550 5.1.1 try later"
    assert _said(notice(body)) == (SOFT, "5.1.1")


def test_the_code_decides_before_the_words() -> None:
    """A 5.x.x code with temporary words is hard; a 4.x.x with failure words soft."""
    assert _said(notice("550 5.2.2 mailbox full, try again"))[0] is HARD
    assert _said(notice("could not be delivered: 452 4.2.2 over quota")) == (SOFT, "4.2.2")


def test_a_support_phone_number_is_no_smtp_code() -> None:
    """"call 480-624-2500" is no 480 reply code: the failure words decide, hard."""
    body = "could not be delivered. This is a permanent error.\nCall 480-624-2500."
    assert _said(notice(body)) == (HARD, None)


def test_a_temporary_cause_alone_is_soft() -> None:
    """A notice naming only a passing condition, neither failure nor retry: soft."""
    assert _said(notice("<someone@example.org>: over quota", subject="Notice"))[0] is SOFT


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("Delivery Status Notification (Failure)", HARD),
        ("Returned mail: see transcript for details", HARD),
        ("Undeliverable: Welcome", HARD),
        ("Delivery Status Notification (Delay)", SOFT),
        ("Warning: message 1rWx4A-0007Zb-0C delayed 24 hours", SOFT),
    ],
)
def test_when_the_body_says_nothing_the_subject_decides(subject: str, kind: InboundClass) -> None:
    """An empty or unreadable body: "(Failure)", "Returned mail", "Undeliverable" hard; a
    delay or a warning soft."""
    assert _said(notice("\n", subject=subject))[0] is kind


def test_a_notice_that_says_nothing_at_all_is_soft() -> None:
    """Neither the body nor the subject says failed or trying: soft, one ambiguous message
    never loses a customer (soft-bounced emails in a row still suppress)."""
    found = _verdict(notice("Hello.\n", subject="Delivery Status Notification"))
    assert found.kind is SOFT
    assert "says nothing of failing or trying" in found.reason


def test_a_persons_mail_with_a_notice_like_subject_is_no_bounce() -> None:
    """The customer writes "Undeliverable: my parcel" in answer to our email: it looks like a
    bounce by its subject alone, and that subject is no evidence of a failure: a reply, and
    the customer is not suppressed."""
    raw = (
        f"From: Someone <{OURS.email}>\r\nTo: hello@acme.test\r\n"
        "Subject: Undeliverable: my parcel\r\n"
        f"In-Reply-To: <{OURS.message_id}>\r\n\r\nHello, where is my parcel?\r\n"
    ).encode()
    found = _verdict(raw)
    assert (found.kind, found.delivery) == (InboundClass.REPLY, OURS)


def test_x_failed_recipients_makes_a_silent_notice_hard() -> None:
    """Exim's X-Failed-Recipients names a failed address: a final failure, hard."""
    raw = notice("\n", subject="Notice", extra="X-Failed-Recipients: someone@example.org\r\n")
    assert _said(raw)[0] is HARD


def test_a_policy_rejection_is_hard_with_its_status() -> None:
    """5.7.x is classified hard with its status; the listening service never suppresses for
    it (tests/integration/test_soft_bounces.py checks that end to end)."""
    assert _said(notice("could not be delivered: 554 5.7.1 message refused as spam")) == (
        HARD,
        "5.7.1",
    )


# --- RFC 3464 reports: the Action decides ------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "severity"),
    [
        ("failed", "5.1.1", Severity.HARD),
        ("failed", None, Severity.HARD),
        ("failed", "4.4.7", Severity.SOFT),
        ("failed", "2.0.0", Severity.HARD),  # no failure status beside it: none
        ("failure", None, Severity.HARD),  # NTMail's spelling
        ("error", None, Severity.HARD),  # opensmtpd's
        ("delayed", "4.4.1", Severity.SOFT),
        ("delayed", "5.0.0", Severity.SOFT),  # still being tried, whatever the code
        ("delivered", "5.0.0", None),
        ("relayed", None, None),
        ("", "5.1.1", Severity.HARD),  # no Action: the Status class
        ("", "4.2.2", Severity.SOFT),
    ],
)
def test_a_report_block_is_hard_or_soft_by_its_action(
    action: str, status: str | None, severity: Severity | None
) -> None:
    """Action failed with 5.x.x or no Status is hard, with 4.x.x soft; delayed is soft;
    delivered and relayed are no failure; without an Action the Status class decides."""
    assert DsnRecipient(action=action, status=status).severity is severity

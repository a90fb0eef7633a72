"""What a stranger's message can make the classifier look up, and act on, without the store:
only ids of the shape dripper makes, a bounded handful of each kind, and never the
addresses a report names (an address alone suppresses nobody)."""

from __future__ import annotations

import pytest

from dripper.engine.inbound import InboundClass, Known, classify, parse_inbound
from dripper.engine.inbound_facts import MAX_LOOKUPS, is_our_message_id
from tests.unit.test_inbound_reports import arf, dsn
from tests.unit.test_inbound_rules import ADA, BOB, KNOWN, RETURN_PATH, mail


@pytest.mark.parametrize(
    ("message_id", "ours"),
    [
        ("hlidv5v425yedcbtmuabm5atiu@acme.test", True),
        ("weekly00ada0delivery@mail.acme-shop.example", True),
        ("CAF=abc123+x@mail.gmail.com", False),  # a mail client's
        ("HLIDV5V425YEDCBTMUABM5ATIU@acme.test", False),  # ours are lower-case
        ("short@acme.test", False),  # a delivery id has 8 to 64 characters
        (f"{'a' * 65}@acme.test", False),
        ("hlidv5v425yedcbtmuabm5atiu@", False),
        ("hlidv5v425yedcbtmuabm5atiu@acme.test@x", False),
        (f"hlidv5v425yedcbtmuabm5atiu@{'a' * 200}.test", False),  # over the column's 255
    ],
)
def test_only_message_ids_of_our_shape_are_ours(message_id: str, ours: bool) -> None:
    """A Message-ID is looked up only when it could be one `tokens.new_message_id` made."""
    assert is_our_message_id(message_id) is ours


def test_a_message_full_of_ids_lists_a_bounded_few_to_look_up() -> None:
    """Three thousand VERP addresses and as many References of our shape, and ids of other
    shapes first: at most MAX_LOOKUPS of each kind are listed, ours only, in the order
    that matters (the VERP address named first; In-Reply-To before References)."""
    fake = [f"{i:026d}".replace("0", "q") for i in range(3000)]
    verp = [f"bounces+{f}@bounce.acme.test" for f in fake]
    raw = mail(
        "From: MAILER-DAEMON@mx.example.net",
        *(f"To: {', '.join(verp[i : i + 40])}" for i in range(0, len(verp), 40)),
        f"In-Reply-To: <CAF=x@mail.gmail.com> <{ADA.message_id}>",
        f"References: {' '.join(f'<{f}@acme.test>' for f in fake)}",
    )
    inbound = parse_inbound(raw, return_path=RETURN_PATH)
    assert len(inbound.verp_ids) > 500
    assert inbound.delivery_ids() == tuple(fake[:MAX_LOOKUPS])
    ids = inbound.referenced_ids()
    assert len(ids) == MAX_LOOKUPS
    assert ids[0] == ADA.message_id
    assert all(is_our_message_id(i) for i in ids)
    assert inbound.addresses() == ("mailer-daemon@mx.example.net",)


def test_the_unsubscribe_subject_id_is_looked_up_before_verp_ids() -> None:
    """The one id a person's unsubscribe mail names is never crowded out by VERP ids."""
    verp = ", ".join(f"bounces+{'q' * 25}{i}@bounce.acme.test" for i in range(20))
    raw = mail("From: bob@example.com", f"To: {verp}", f"Subject: unsubscribe {BOB.delivery_id}")
    assert parse_inbound(raw, return_path=RETURN_PATH).delivery_ids()[0] == BOB.delivery_id


@pytest.mark.parametrize(
    "raw",
    [
        dsn("Final-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 5.1.1"),
        dsn("Final-Recipient: rfc822; bob@example.com\nAction: delayed\nStatus: 4.2.2"),
        arf("Feedback-Type: abuse\nOriginal-Rcpt-To: bob@example.com", "To: bob@example.com"),
        mail(
            "From: MAILER-DAEMON@mx.example.net",
            "To: hello@acme.test",
            "X-Failed-Recipients: bob@example.com",
            "Subject: Mail delivery failed",
            body="A message that you sent could not be delivered.\n  bob@example.com\n",
        ),
    ],
    ids=["dsn-hard", "dsn-soft", "arf-abuse", "exim-hard"],
)
def test_a_report_naming_only_an_address_we_mailed_is_unmatched(raw: bytes) -> None:
    """Even with the store knowing Bob's recent email by his address, a report naming
    only that address (no Message-ID, no VERP id) is unmatched: no hard bounce, no soft
    one (three would suppress), no complaint; the address is kept for the record."""
    inbound = parse_inbound(raw, return_path=RETURN_PATH)
    known = Known(by_address={"bob@example.com": BOB})
    found = classify(inbound, known)
    assert (found.kind, found.delivery) == (InboundClass.UNMATCHED, None)
    assert found.address == "bob@example.com"
    assert "an address alone is no proof" in found.reason
    assert classify(inbound, KNOWN).kind is InboundClass.UNMATCHED

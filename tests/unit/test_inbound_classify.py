"""The inbound classifier against a corpus of real-shaped messages (tests/data/inbound/):
DSNs as Postfix, Exim, Exchange Online, Gmail and Yahoo send them, ARF complaints,
out-of-office replies, replies, forwards, spam, forged and broken mail. One table says
what each file is; the classifier must get every one right, and never raise on anything.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.engine.inbound import (
    DeliveryRef,
    Inbound,
    InboundClass,
    Known,
    Verdict,
    classify,
    parse_inbound,
)

CORPUS = Path(__file__).parents[1] / "data" / "inbound"
RETURN_PATH = "bounces@bounce.acme.test"
MAILTO = "mailto:unsubscribe@acme.test"


def _sent(delivery_id: str, customer: int, email: str, campaign: str, step: str) -> DeliveryRef:
    return DeliveryRef(delivery_id, f"{delivery_id}@acme.test", customer, email, campaign, step)


# What the store holds: our sends of the last 30 days, oldest first.
SENDS = (
    _sent("hlidv5v425yedcbtmuabm5atiu", 1, "ada@example.org", "welcome", "welcome"),
    _sent("z2lcjrzrugbiktzmusyajxah5i", 1, "ada@example.org", "welcome", "thank-you"),
    _sent("jxs7qyukzrg3nel5q6cnnfprhi", 2, "grace@example.net", "welcome", "welcome"),
    _sent("x7ukdaqz7ylpbw55a2mgqhpguy", 3, "linus@mail.example.com", "welcome", "tips"),
    _sent("7ke25syu3zruxi5js6qchybz4y", 4, "margaret@exim.example", "welcome", "welcome"),
    _sent("r5insh55pnypwlhksleivdfvyy", 5, "barbara@slowmail.example", "welcome", "tips"),
    _sent("ltybtvg4bbeys5mfncmyfsfiya", 6, "alan.turing@contoso.example", "welcome", "welcome"),
    _sent("ufbo2hzwhgqvzwppw6ufnginoy", 7, "joan.clarke@fabrikam.example", "welcome", "tips"),
    _sent("imd6kfu5fiu24ggxivkanvcxxe", 8, "edsger.d@gmail.com", "welcome", "welcome"),
    _sent("54cawqtfzzplohippe543ooqia", 9, "donald.k@gmail.com", "welcome", "tips"),
    _sent("2wge4ija3dsyads3d6de2rmmui", 10, "john.mccarthy@yahoo.com", "welcome", "welcome"),
    _sent("4vosya4xzjsy3ef4ot7o7b7j7y", 11, "frances.allen@yahoo.com", "welcome", "tips"),
    _sent("6vxqx4knsmi2tupvadttsn66ia", 12, "ken@legacy.example", "welcome", "welcome"),
    _sent("kppjy6x2v6t5inxgr5kdwtnxwa", 13, "dennis@oldmail.example", "welcome", "welcome"),
    _sent("coskbielpwvlnb5tqwhenokgwi", 14, "niklaus.w@yahoo.com", "welcome", "welcome"),
    _sent("rctacbkxmuqtksuh77swrxh66i", 15, "bjarne@aol.com", "welcome", "welcome"),
    _sent("myegfptwlwxgarwnyvotkjbc44", 16, "radia.p@contoso.example", "welcome", "welcome"),
    _sent("otirr5sutlc2lz4nuekzl3trvq", 17, "alice.w@gmail.com", "welcome", "welcome"),
    _sent("ogvfi4dnydunf3qdi6hvauw7yy", 18, "konrad.zuse@firma.example.de", "willkommen", "1"),
    _sent("6nbodf3eny7vaa5jozbn72acmu", 19, "mary.k@icloud.com", "welcome", "tips"),
    _sent("cn4hj72zktcjieig55ajd5egm4", 20, "barbara.liskov@example.org", "welcome", "tips"),
    _sent("rrd7llwdgvkdvuzbpyfnlztxii", 21, "tim.bl@example.co.uk", "welcome", "first-week"),
    _sent("zhs3ebqkteoyrsuug6om7eodvq", 22, "hedy@example.net", "welcome", "welcome"),
    _sent("hvkywnzvudiisdfkowsmt4ggmy", 23, "sophie.w@example.org", "welcome", "welcome"),
    _sent("zil5frfmverqqh74npomixa2lm", 24, "shafi.g@example.com", "welcome", "welcome"),
    _sent("k3xjmbw42xkikxikt4is56wg5q", 25, "info@bakery.example", "orders", "shipped"),
)
KNOWN = Known.of(SENDS)

B, S = InboundClass.BOUNCE_HARD, InboundClass.BOUNCE_SOFT
C, A, R = InboundClass.COMPLAINT, InboundClass.AUTO_REPLY, InboundClass.REPLY
U, N = InboundClass.UNSUBSCRIBE, InboundClass.UNMATCHED

# file -> (class, delivery id it belongs to, status, weak: matched by address only)
TABLE: dict[str, tuple[InboundClass, str | None, str | None, bool]] = {
    # RFC 3464 reports, matched by the returned message's Message-ID
    "postfix-hard-user-unknown.eml": (B, "jxs7qyukzrg3nel5q6cnnfprhi", "5.1.1", False),
    "postfix-soft-delayed.eml": (S, "x7ukdaqz7ylpbw55a2mgqhpguy", "4.2.2", False),
    "exchange-online-hard-recipient-not-found.eml": (
        B,
        "ltybtvg4bbeys5mfncmyfsfiya",
        "5.1.10",
        False,
    ),
    "exchange-online-soft-delayed.eml": (S, "ufbo2hzwhgqvzwppw6ufnginoy", "4.4.7", False),
    "gmail-hard-account-does-not-exist.eml": (B, "imd6kfu5fiu24ggxivkanvcxxe", "5.1.1", False),
    "gmail-soft-over-quota-delay.eml": (S, "54cawqtfzzplohippe543ooqia", "4.2.2", False),
    # Non-standard formats: flufl.bounce and the wording; status from the text when it has one
    "exim-hard-classic.eml": (B, "7ke25syu3zruxi5js6qchybz4y", "5.1.1", False),
    "exim-soft-delay-warning.eml": (S, "r5insh55pnypwlhksleivdfvyy", "4.2.2", False),
    "yahoo-hard-failure-notice.eml": (B, "2wge4ija3dsyads3d6de2rmmui", None, False),
    "yahoo-soft-failure-notice-deferred.eml": (S, "4vosya4xzjsy3ef4ot7o7b7j7y", None, False),
    # Only the VERP address names the delivery; the wording decides. The unreadable one's
    # subject still says "Returned mail": a final failure without a code, hard (DESIGN 12)
    "verp-only-mangled-permanent.eml": (B, "6vxqx4knsmi2tupvadttsn66ia", None, False),
    "verp-only-no-wording.eml": (B, "kppjy6x2v6t5inxgr5kdwtnxwa", None, False),
    "forged-dsn-unknown-delivery.eml": (N, None, "5.1.1", False),
    # Forged: they name only a customer's address (mailed four days ago), no Message-ID and
    # no VERP id of ours. Anyone can write that; an address alone suppresses nobody
    "forged-dsn-address-only.eml": (N, None, "5.1.1", False),
    "forged-bounce-address-only.eml": (N, None, "5.1.1", False),
    "forged-arf-address-only.eml": (N, None, None, False),
    # Feedback loops
    "arf-yahoo-abuse.eml": (C, "coskbielpwvlnb5tqwhenokgwi", None, False),
    "arf-aol-redacted.eml": (C, "rctacbkxmuqtksuh77swrxh66i", None, False),
    "arf-dmarc-auth-failure.eml": (N, None, None, False),
    # Auto-replies: never replies, even with our Message-ID in In-Reply-To
    "outlook-automatic-reply.eml": (A, "myegfptwlwxgarwnyvotkjbc44", None, False),
    "gmail-vacation-responder.eml": (A, "otirr5sutlc2lz4nuekzl3trvq", None, False),
    "german-abwesenheitsnotiz.eml": (A, "ogvfi4dnydunf3qdi6hvauw7yy", None, True),
    "cpanel-autoresponder.eml": (A, "k3xjmbw42xkikxikt4is56wg5q", None, False),
    # People
    "reply-gmail-with-quote.eml": (R, "z2lcjrzrugbiktzmusyajxah5i", None, False),
    "reply-iphone-no-quote.eml": (R, "6nbodf3eny7vaa5jozbn72acmu", None, False),
    "reply-dropped-in-reply-to.eml": (R, "cn4hj72zktcjieig55ajd5egm4", None, True),
    "forward-outlook-from-customer.eml": (R, "rrd7llwdgvkdvuzbpyfnlztxii", None, True),
    "unsubscribe-mailto.eml": (U, "zhs3ebqkteoyrsuug6om7eodvq", None, False),
    # Nothing of ours
    "newsletter-from-customer.eml": (N, None, None, False),
    "spam-from-stranger.eml": (N, None, None, False),
    "reply-unknown-message-id.eml": (N, None, None, False),
    # Ada's Message-ID quoted by someone who is not Ada: no reply of hers
    "reply-from-another-address.eml": (N, None, None, False),
    "broken-mime.eml": (N, None, None, False),
}


def _read(name: str) -> Inbound:
    return parse_inbound((CORPUS / name).read_bytes(), return_path=RETURN_PATH)


def _classify(inbound: Inbound, known: Known = KNOWN) -> Verdict:
    return classify(inbound, known, unsubscribe_mailto=MAILTO)


def test_every_corpus_file_is_in_the_table() -> None:
    """No file in tests/data/inbound goes untested, and the table names no missing file
    (flufl/, flufl.bounce's corpus, has its own manifest: tests/unit/test_bounce_policy.py)."""
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_file()) == sorted(TABLE)


def test_the_corpus_has_both_line_endings() -> None:
    """Real files come with CRLF (fetched over IMAP) and LF (maildir, MTA pipe): both are read."""
    endings = {b"\r\n" in (CORPUS / name).read_bytes() for name in TABLE}
    assert endings == {True, False}


@pytest.mark.parametrize(("name", "expected"), sorted(TABLE.items()), ids=sorted(TABLE))
def test_each_corpus_file_gets_its_class(
    name: str, expected: tuple[InboundClass, str | None, str | None, bool]
) -> None:
    """Each file gets the class, delivery, status and weak flag of the table, with a reason."""
    kind, delivery_id, status, weak = expected
    verdict = _classify(_read(name))
    got = (verdict.kind, verdict.delivery.delivery_id if verdict.delivery else None)
    assert got == (kind, delivery_id), verdict.reason
    assert (verdict.status, verdict.weak) == (status, weak), verdict.reason
    assert verdict.reason
    assert "\n" not in verdict.reason
    if verdict.delivery is not None:
        assert verdict.address == verdict.delivery.email


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_lookups_an_inbound_lists_are_all_the_store_needs(name: str) -> None:
    """Answering only the lookups an Inbound lists gives the verdict a full store gives."""
    inbound = _read(name)
    narrowed = Known(
        by_message_id={
            k: v for k, v in KNOWN.by_message_id.items() if k in inbound.referenced_ids()
        },
        by_delivery_id={
            k: v for k, v in KNOWN.by_delivery_id.items() if k in inbound.delivery_ids()
        },
        by_address={k: v for k, v in KNOWN.by_address.items() if k in inbound.addresses()},
    )
    assert _classify(inbound, narrowed) == _classify(inbound)


def test_a_forged_report_suppresses_nothing() -> None:
    """A DSN naming only an unknown delivery, Message-ID and address is unmatched: no delivery."""
    verdict = _classify(_read("forged-dsn-unknown-delivery.eml"))
    assert (verdict.kind, verdict.delivery) == (InboundClass.UNMATCHED, None)
    assert "nothing suppressed" in verdict.reason


def test_the_reply_to_the_newest_message_wins_over_older_references() -> None:
    """Ada's reply names both of her emails in References; In-Reply-To (the newer) decides."""
    inbound = _read("reply-gmail-with-quote.eml")
    assert inbound.thread_ids() == (
        "z2lcjrzrugbiktzmusyajxah5i@acme.test",
        "hlidv5v425yedcbtmuabm5atiu@acme.test",
    )


def test_a_reply_keeps_what_was_written_apart_from_what_was_quoted() -> None:
    """The Gmail reply's own words stop at the (wrapped) "On ... wrote:" line."""
    inbound = _read("reply-gmail-with-quote.eml")
    assert inbound.text.startswith("Hello,")
    assert "do you ship to Ireland?" in inbound.text
    assert inbound.text.endswith("Ada")
    assert "first order" not in inbound.text
    assert inbound.quoted.startswith("On Mon, Mar 1, 2027")
    assert "> Thank you for your first order!" in inbound.quoted


def test_a_reply_without_a_quote_has_no_quoted_text() -> None:
    """The iPhone reply is all the sender's own words, emoji decoded."""
    inbound = _read("reply-iphone-no-quote.eml")
    assert inbound.text.startswith("Tip two was exactly what I needed 😊")
    assert inbound.quoted == ""


@pytest.mark.parametrize(
    ("name", "own_ends", "quote_starts"),
    [
        ("reply-dropped-in-reply-to.eml", "Barbara", "----- Original Message -----"),
        ("forward-outlook-from-customer.eml", "Tim", "________________________________"),
    ],
)
def test_quoted_text_starts_at_a_separator(name: str, own_ends: str, quote_starts: str) -> None:
    """An "Original Message" banner and Outlook's rule start the quoted part."""
    inbound = _read(name)
    assert inbound.text.endswith(own_ends)
    assert inbound.quoted.startswith(quote_starts)


def test_a_german_out_of_office_decodes_its_body() -> None:
    """The Notes out-of-office is read in its declared charset (ISO-8859-1, quoted-printable)."""
    inbound = _read("german-abwesenheitsnotiz.eml")
    assert "nicht im Büro" in inbound.text
    assert inbound.auto_reply == ("subject 'Abwesenheitsnotiz'",)


def test_broken_mime_is_read_as_far_as_it_goes() -> None:
    """The broken message parses without raising, keeps its sender and lists its problems."""
    inbound = _read("broken-mime.eml")
    assert inbound.sender == "x9@mailer.broken.example"
    assert inbound.problems


# --- never raises --------------------------------------------------------------------------


def _verdict_is_one_class(inbound: Inbound) -> None:
    verdict = _classify(inbound)
    assert isinstance(verdict.kind, InboundClass)
    assert (verdict.kind is InboundClass.UNMATCHED) or verdict.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Whatever the bytes, parse_inbound returns facts and classify exactly one class."""
    _verdict_is_one_class(parse_inbound(raw, return_path=RETURN_PATH))


_MIME_BITS = [
    b"\r\n",
    b"\n\n",
    b"--",
    b"Content-Type: multipart/mixed; boundary=x\n",
    b"Content-Type: message/delivery-status\n",
    b"Content-Transfer-Encoding: base64\n",
    b"=?utf-8?B?",
    b"\x00",
    b"\xff\xfe",
    b"<",
    b">",
    b":",
    b"Action: failed\nStatus: 5.1.1\n",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(TABLE)), st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_mutated_corpus_files_never_raise(name: str, seed: int, edits: int) -> None:
    """Corpus files with bytes flipped, cut, deleted or MIME bits spliced in still classify."""
    rng = random.Random(seed)
    raw = bytearray((CORPUS / name).read_bytes())
    for _ in range(edits):
        at = rng.randrange(len(raw) + 1)
        action = rng.randrange(4)
        if action == 0 and raw:
            raw[min(at, len(raw) - 1)] = rng.randrange(256)
        elif action == 1:
            raw[at:at] = rng.choice(_MIME_BITS)
        elif action == 2:
            del raw[at : at + rng.randrange(1, 200)]
        else:
            raw = raw[:at]
    _verdict_is_one_class(parse_inbound(bytes(raw), return_path=RETURN_PATH))

"""Who opened and who clicked, row by row of `dripper.engine.hits`' table: the pure
classifier the web app hands its facts to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dripper.engine.hits import HitClass, HitFacts, HitKind, classify

SENT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=3)
SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
PROOFPOINT = "Mozilla/5.0 urldefense.proofpoint.com"
SOON = SENT + timedelta(seconds=3)


def hit(kind: HitKind, *, ua: str = SAFARI, at: datetime = LATER, method: str = "GET",
        ip: str | None = "203.0.113.7", url: str | None = None,
        recent: tuple[tuple[datetime, str], ...] = (), relay: bool = False) -> HitFacts:
    return HitFacts(kind, at, method, ua, ip, SENT, url, recent, relay)  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "expected", "reason"),
    [
        (hit(HitKind.OPEN), HitClass.HUMAN, "a mail client"),
        (hit(HitKind.OPEN, ua=OUTLOOK), HitClass.HUMAN, "a mail client"),
        (hit(HitKind.OPEN, ua=GMAIL_PROXY), HitClass.HUMAN, "Google's image proxy"),
        (hit(HitKind.OPEN, ua=GMAIL_PROXY, at=SOON), HitClass.HUMAN, "Google"),
        (hit(HitKind.OPEN, ua="Mozilla/5.0"), HitClass.MACHINE, "(user agent)"),
        (hit(HitKind.OPEN, ip="17.58.101.4"), HitClass.MACHINE, "(Apple network)"),
        (hit(HitKind.OPEN, ip="::ffff:17.58.101.4"), HitClass.MACHINE, "(Apple network)"),
        (hit(HitKind.OPEN, relay=True), HitClass.MACHINE, "(Apple's relay ranges)"),
        (hit(HitKind.OPEN, at=SENT + timedelta(seconds=9)), HitClass.MACHINE, "of delivery"),
        (hit(HitKind.OPEN, at=SENT + timedelta(seconds=16)), HitClass.HUMAN, "a mail client"),
        (hit(HitKind.OPEN, ua="python-requests/2.32"), HitClass.MACHINE, "robot"),
        (hit(HitKind.OPEN, ua=""), HitClass.MACHINE, "robot"),
        (hit(HitKind.CLICK, url="https://a.test/1"), HitClass.HUMAN, "a person's browser"),
        (hit(HitKind.CLICK, method="HEAD"), HitClass.SCANNER, "HEAD"),
        # Safari with iCloud Private Relay on: a person, clicking through Apple's relays.
        (hit(HitKind.CLICK, relay=True, url="https://a.test/1"), HitClass.HUMAN, "browser"),
        (hit(HitKind.CLICK, ua=BARRACUDA), HitClass.SCANNER, "scanner"),
        (hit(HitKind.CLICK, ua=PROOFPOINT), HitClass.SCANNER, "scanner"),
        (hit(HitKind.CLICK, at=SENT + timedelta(seconds=1)), HitClass.SCANNER, "under 2 s"),
        (hit(HitKind.CLICK, at=SENT + timedelta(seconds=2)), HitClass.HUMAN, "browser"),
        (hit(HitKind.CLICK, url="https://a.test/3",
             recent=((LATER - timedelta(seconds=2), "https://a.test/1"),
                     (LATER - timedelta(seconds=1), "https://a.test/2"))),
         HitClass.SCANNER, "3 links of one email within 5 s"),
        (hit(HitKind.CLICK, url="https://a.test/3",
             recent=((LATER - timedelta(seconds=9), "https://a.test/1"),
                     (LATER - timedelta(seconds=1), "https://a.test/2"))),
         HitClass.HUMAN, "browser"),
        (hit(HitKind.CLICK, url="https://a.test/1",
             recent=((LATER - timedelta(seconds=2), "https://a.test/1"),
                     (LATER - timedelta(seconds=1), "https://a.test/1"))),
         HitClass.HUMAN, "browser"),
    ],
)  # fmt: skip
def test_each_row_of_the_table(facts: HitFacts, expected: HitClass, reason: str) -> None:
    """The class and the reason given for each kind of hit."""
    verdict = classify(facts)
    assert verdict.cls is expected
    assert reason in verdict.reason


def test_only_a_burst_reclassifies_the_clicks_before_it() -> None:
    """The third link within 5 s flags a burst (its earlier clicks become scanner clicks)."""
    burst = classify(
        hit(HitKind.CLICK, url="c", recent=((LATER, "a"), (LATER, "b")))
    )
    assert burst.burst
    assert not classify(hit(HitKind.CLICK, method="HEAD")).burst


def test_an_unknown_delivery_time_never_makes_a_hit_early() -> None:
    """Without the delivery time, timing says nothing."""
    facts = HitFacts(HitKind.CLICK, LATER, "GET", SAFARI, None, None, "u", ())
    assert classify(facts).cls is HitClass.HUMAN

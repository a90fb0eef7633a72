"""Who opened, who clicked: a person, or a machine acting for one (DESIGN 8).

Pure: the facts of one hit (gathered by `dripper serve`) and what the store knows of the
email in, a class out. The web app never decides; it gathers.

Opens (`/o/`, the pixel)                                     class
    Google's image proxy (GoogleImageProxy)                   human: it fetches on a real open
    user agent exactly `Mozilla/5.0`                          machine: Apple Mail Privacy Protection
    from Apple's network (17.0.0.0/8)                         machine: Apple's prefetch relays
    from Apple's published relay ranges (`relay`)             machine: the same, via Private Relay
    within OPEN_PREFETCH of delivery                          machine: fetched on arrival, unread
    known bot and scanner agents                              machine
    anything else                                             human

Clicks (`/c/`, a link)                                       class
    HEAD                                                      scanner: people's browsers GET
    known scanner agents (safe-links, gateways, bots, tools)  scanner
    under CLICK_TOO_SOON after delivery                       scanner: nobody reads that fast
    the third distinct link of one email within BURST_WINDOW  scanner: a robot following them all
    anything else                                             human

A click always redirects, whatever its class; the class only decides how it is counted.
No step ever branches on a single open (Apple's prefetch would make that a coin toss).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dripper.engine.relays import client_address


class HitKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"


class HitClass(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"  # an open no person saw
    SCANNER = "scanner"  # a click no person made


OPEN_PREFETCH = timedelta(seconds=15)
CLICK_TOO_SOON = timedelta(seconds=2)
BURST_WINDOW = timedelta(seconds=5)
BURST_LINKS = 3

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
GOOGLE_PROXY = re.compile(r"GoogleImageProxy|ggpht\.com", re.IGNORECASE)
# Link checkers of mail gateways and security suites, crawlers, and tools no person uses
# to read mail. Lower-case substrings of the User-Agent.
SCANNER_AGENTS = (
    "bot",
    "spider",
    "crawl",
    "scan",
    "preview",
    "barracuda",
    "proofpoint",
    "mimecast",
    "urldefense",
    "safelinks",
    "symantec",
    "messagelabs",
    "trend micro",
    "trendmicro",
    "fireeye",
    "forcepoint",
    "sophos",
    "zscaler",
    "cisco",
    "ironport",
    "checkpoint",
    "fortinet",
    "avast",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "apache-httpclient",
    "slackbot",
    "facebookexternalhit",
    "skypeuripreview",
)


@dataclass(frozen=True)
class HitFacts:
    """One request to `/o/` or `/c/`, and what the store knows of its email."""

    kind: HitKind
    at: datetime
    method: str  # GET or HEAD
    user_agent: str
    ip: str | None
    delivered_at: datetime | None  # when the email was sent (None: not known)
    url: str | None = None  # a click's target
    # Other clicks of the same email shortly before this one: (when, url).
    recent_clicks: Sequence[tuple[datetime, str]] = ()
    # The address is in Apple's published relay ranges (`[tracking] apple_relay_ranges`,
    # `dripper.engine.relays`): Mail Privacy Protection loads images through them.
    relay: bool = False


@dataclass(frozen=True)
class Verdict:
    cls: HitClass
    reason: str
    # A burst was found: the earlier clicks of the window were the same robot's, and are
    # to be counted as scanner clicks too.
    burst: bool = False


def classify(facts: HitFacts) -> Verdict:
    """The class of one hit, and why (kept with the hit, so a count can be explained)."""
    if facts.kind is HitKind.OPEN:
        return _open(facts)
    return _click(facts)


def _open(facts: HitFacts) -> Verdict:
    agent = facts.user_agent.strip()
    if GOOGLE_PROXY.search(agent):
        return Verdict(HitClass.HUMAN, "Google's image proxy fetches on a real open")
    if agent == "Mozilla/5.0":
        return Verdict(HitClass.MACHINE, "Apple Mail Privacy Protection (user agent)")
    if _in_apple_network(facts.ip):
        return Verdict(HitClass.MACHINE, "Apple Mail Privacy Protection (Apple network)")
    if facts.relay:
        return Verdict(HitClass.MACHINE, "Apple Mail Privacy Protection (Apple's relay ranges)")
    if _soon_after(facts, OPEN_PREFETCH):
        return Verdict(HitClass.MACHINE, f"within {OPEN_PREFETCH.seconds} s of delivery")
    if _scanner_agent(agent):
        return Verdict(HitClass.MACHINE, "a robot's user agent")
    return Verdict(HitClass.HUMAN, "a mail client")


def _click(facts: HitFacts) -> Verdict:
    if facts.method.upper() == "HEAD":
        return Verdict(HitClass.SCANNER, "HEAD request (browsers GET)")
    if _scanner_agent(facts.user_agent):
        return Verdict(HitClass.SCANNER, "a link scanner's user agent")
    if _soon_after(facts, CLICK_TOO_SOON):
        return Verdict(HitClass.SCANNER, f"under {CLICK_TOO_SOON.seconds} s after delivery")
    window = {
        url
        for when, url in facts.recent_clicks
        if timedelta(0) <= facts.at - when <= BURST_WINDOW and url != facts.url
    }
    if len(window) + 1 >= BURST_LINKS:
        return Verdict(
            HitClass.SCANNER,
            f"{len(window) + 1} links of one email within {BURST_WINDOW.seconds} s",
            burst=True,
        )
    return Verdict(HitClass.HUMAN, "a person's browser")


def _soon_after(facts: HitFacts, window: timedelta) -> bool:
    if facts.delivered_at is None:
        return False
    return timedelta(0) <= facts.at - facts.delivered_at < window


_SCANNER = re.compile("|".join(map(re.escape, SCANNER_AGENTS)))


@functools.lru_cache(maxsize=4096)  # a mailing's hits come from a few hundred agents
def _scanner_agent(agent: str) -> bool:
    lowered = agent.lower()
    return not lowered.strip() or _SCANNER.search(lowered) is not None


@functools.lru_cache(maxsize=65536)  # parsing an address costs more than the check
def _in_apple_network(ip: str | None) -> bool:
    address = client_address(ip)
    return address is not None and address in APPLE_NETWORK

"""The domains of the Message-IDs dripper has given (`<delivery id>@<domain of From>`).

A link, an unsubscribe or a bounce names its email by the delivery id alone; the lookup
is by the Message-ID's unique index, so it needs the domain. Nearly always it is the
current From address's; an email sent before the From domain changed has another. Those
few other domains are remembered here (a `campaign_state` row the daemon keeps, filled by
migration 0011 from what the outbox held), so that every lookup is a bounded look-up by
the unique index, never a scan of the outbox by prefix: a forgotten customer's link costs
what a valid one costs (issue 23).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.engine import Connection

from dripper.store.campaign_state import load_state, save_state

STATE = "~domains"  # campaign names are [a-z0-9-]+: this state row cannot clash
MAX_DOMAINS = 16  # the newest kept: a shop changes its From domain a handful of times


def known(conn: Connection) -> list[str]:
    """The domains given so far, the newest first."""
    domains = load_state(conn, STATE).get("domains", [])
    return [str(d) for d in domains if isinstance(d, str)][:MAX_DOMAINS]


def remember(conn: Connection, domain: str) -> None:
    """Note that Message-IDs are being given with `domain` (the daemon, before it sends)."""
    domains = known(conn)
    if domains[:1] == [domain]:
        return
    kept = [domain, *(d for d in domains if d != domain)][:MAX_DOMAINS]
    save_state(conn, STATE, {"domains": kept})


def message_ids(
    delivery_ids: Iterable[str], domains: Sequence[str], *, besides: str | None = None
) -> dict[str, str]:
    """Each Message-ID these deliveries may have, to its delivery id (all the domains,
    but `besides`, the one already looked up)."""
    return {
        f"{d}@{domain}": d for d in delivery_ids for domain in domains if domain != besides
    }

"""Opens and clicks: a batch of hits from `dripper serve`, classified by the pure core
(`dripper.engine.hits`) and written in one transaction. It needs only the store and the
Message-ID domain, so the hit writer's process of its own (`dripper.web.hitproc`) runs it
without the campaigns, the planner or the mail intake.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine.hits import BURST_WINDOW, HitClass, HitFacts, HitKind, classify
from dripper.store.tracking import StoredHit

if TYPE_CHECKING:
    from dripper.engine.relays import RelayRanges
    from dripper.store import Store
    from dripper.store.tracking import Delivery, Sent


@dataclass(frozen=True)
class Hit:
    """What a request to `/o/` or `/c/` tells: gathered by the web app, judged here."""

    kind: HitKind
    delivery_id: str
    at: datetime
    method: str
    user_agent: str
    ip: str | None
    url: str | None = None


def record_hits(
    store: Store, domain: str, hits: Sequence[Hit], relays: RelayRanges | None = None
) -> dict[tuple[str, str], int]:
    """Classify and store a batch of hits in one transaction; returns how many were
    stored, by kind and class. A human click on an email nobody was seen opening
    implies an open; the third link of one email clicked within seconds makes the
    burst a scanner's. `relays`: Apple's relay ranges, when configured (an open from
    one is a machine's)."""
    from dripper.store import tracking

    if not hits:
        return {}
    with store.transaction() as conn:
        found = tracking.sent(conn, {h.delivery_id for h in hits}, domain=domain)
        resolved = [(h, found.get(h.delivery_id)) for h in hits]
        known = [(h, d) for h, d in resolved if d is not None]  # forgotten: nothing kept
        # Only clicks look back (a burst of links; an open a click implies once): opens
        # need nothing from earlier hits, and whether a person opened an email is a
        # column of the email itself, read with it.
        clicked = [(h, d) for h, d in known if h.kind is HitKind.CLICK]
        since = min(h.at for h, _ in clicked) - BURST_WINDOW if clicked else None
        clicks = (
            tracking.recent_clicks(conn, {d.outbox_id for _, d in clicked}, since=since)
            if since is not None
            else {}
        )
        opened = {d.outbox_id for d in found.values() if d.opened}
        firsts = {
            "opened_at": set(opened),
            "clicked_at": {d.outbox_id for d in found.values() if d.clicked},
        }
        stored: list[StoredHit] = []
        for hit, delivery in known:  # in the order they came: the queue is first-in
            click = hit.kind is HitKind.CLICK
            verdict = classify(
                HitFacts(
                    hit.kind,
                    hit.at,
                    hit.method,
                    hit.user_agent,
                    hit.ip,
                    delivery.sent_at,
                    hit.url,
                    _recent(clicks.get(delivery.outbox_id)) if click else (),
                    relays is not None and not click and hit.ip in relays,
                )
            )
            human = verdict.cls is HitClass.HUMAN
            if click:
                clicks.setdefault(delivery.outbox_id, {})[hit.url or ""] = hit.at
                if verdict.burst:
                    _burst(conn, stored, delivery.outbox_id, hit.at)
                    # The burst took back the opens its clicks implied and recomputed the
                    # email's first open and click: what was read of them no longer holds.
                    firsts["opened_at"].discard(delivery.outbox_id)
                    firsts["clicked_at"].discard(delivery.outbox_id)
                    if not _still_opened(conn, stored, delivery.outbox_id):
                        opened.discard(delivery.outbox_id)
                if human and delivery.outbox_id not in opened:
                    opened.add(delivery.outbox_id)
                    stored.append(implied_open(delivery, hit.at, by="click"))
            elif human:
                opened.add(delivery.outbox_id)
            stored.append(
                StoredHit(
                    delivery.outbox_id,
                    delivery.customer_id,
                    hit.kind.value,
                    hit.at,
                    not human,
                    hit.url,
                    hit.user_agent,
                    _data(verdict.cls.value, verdict.reason),
                    delivery.campaign,
                    delivery.step,
                    delivery.variant,
                )
            )
        tracking.insert_hits(conn, stored, known=firsts)
    counts: dict[tuple[str, str], int] = {}
    for h in stored:
        key = (h.kind, str(h.data.get("class", "")))
        counts[key] = counts.get(key, 0) + 1
    return counts


def load_relay_ranges(path: str) -> RelayRanges:
    """The file `[tracking] apple_relay_ranges` names; ConfigError (one line, naming the
    key) if it cannot be read or a line is not a prefix."""
    from dripper.engine.relays import RelayRanges
    from dripper.errors import ConfigError

    try:
        with open(path, encoding="utf-8-sig", errors="replace") as stream:  # a BOM or not
            text = stream.read()
    except OSError as exc:
        raise ConfigError(
            f"[tracking] apple_relay_ranges: cannot read {path}: {exc.strerror}; download "
            "https://mask-api.icloud.com/egress-ip-ranges.csv there, or leave the key empty"
        ) from None
    try:
        return RelayRanges.parse(text, path)
    except ConfigError as exc:
        raise ConfigError(f"[tracking] apple_relay_ranges: {exc}") from None


def _still_opened(conn: Any, stored: list[StoredHit], outbox_id: int) -> bool:
    """After a burst: a person's open of this email is left, in this batch or stored."""
    from dripper.store import tracking

    if any(h.outbox_id == outbox_id and h.kind == "open" and not h.machine for h in stored):
        return True
    return tracking.is_opened(conn, outbox_id)


def _recent(last: dict[str, datetime] | None) -> tuple[tuple[datetime, str], ...]:
    return () if not last else tuple((at, url) for url, at in last.items())


@functools.lru_cache(maxsize=256)  # a few dozen reasons: one dict each, shared, never changed
def _data(cls: str, reason: str) -> dict[str, Any]:
    return {"class": cls, "reason": reason}


def implied_open(delivery: Sent | Delivery, at: datetime, *, by: str) -> StoredHit:
    return StoredHit(
        delivery.outbox_id,
        delivery.customer_id,
        HitKind.OPEN.value,
        at,
        False,
        None,
        None,
        {
            "class": HitClass.HUMAN.value,
            "reason": f"implied by {'a click' if by == 'click' else 'an answer'}",
            "implied": by,
        },
        delivery.campaign,
        delivery.step,
        delivery.variant,
    )


def _burst(conn: Any, stored: list[StoredHit], outbox_id: int, at: datetime) -> None:
    """The clicks before this one in its window were the same robot's: in this batch and
    in the database."""
    from dripper.store import tracking

    since = at - BURST_WINDOW
    for i, earlier in enumerate(stored):
        if earlier.outbox_id != outbox_id or earlier.at < since:
            continue
        if earlier.kind == HitKind.CLICK.value and not earlier.machine:
            stored[i] = _as_scanner(earlier)
        elif earlier.data.get("implied") == "click":
            stored[i] = _as_scanner(earlier, dropped=True)
    stored[:] = [h for h in stored if not h.data.get("dropped")]
    tracking.mark_burst(conn, outbox_id, since=since, until=at)


def _as_scanner(hit: StoredHit, *, dropped: bool = False) -> StoredHit:
    from dataclasses import replace

    data = {**hit.data, "class": HitClass.SCANNER.value, "reason": "part of a burst"}
    if dropped:
        data["dropped"] = True
    return replace(hit, machine=True, data=data)

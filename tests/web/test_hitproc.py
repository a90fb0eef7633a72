"""The hit writer's process of its own (`dripper.web.hitproc`), a real child on each
database, fed the way `dripper serve` feeds it: a batch in, what was stored out; replaced
when it dies; deaf to the signals a service manager sends the whole process group.

The tests share one shop per database. The writer's tests open the first emails (OPENED)
and count the rows they added; those that read an email's first open or click each take
emails of their own, that no other test of the module hits."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dripper.engine.hits import HitKind
from dripper.services.hits import Hit
from dripper.store import Store, open_store
from dripper.store.schema import outbox, tracking_events
from dripper.web.hitproc import HitProcess, HitWriteError
from tests.support.serve import Shop, last_id
from tests.web.conftest import DAY20

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
# A day after the fixture's last emails went out: no hit is "within seconds of delivery".
NEXT_DAY = datetime.fromisoformat(DAY20.replace("Z", "+00:00")) + timedelta(days=1)
OPENED = 4  # `opens` hits the first emails, at most this many here; the rest are kept apart


def sent(shop: Shop) -> list[tuple[str, str]]:
    """(delivery id, Message-ID domain) of every sent email, in the order they were sent."""
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            ids = conn.execute(
                sa.select(outbox.c.message_id)
                .where(outbox.c.message_id.is_not(None))
                .order_by(outbox.c.id)
            ).scalars()
            return [(m.split("@", 1)[0], m.split("@", 1)[1]) for m in ids]
    finally:
        store.close()


def stored(shop: Shop, since: int = 0) -> list[tuple[str, bool, str]]:
    """The opens and clicks stored after row `since` (the module's shop keeps earlier
    tests' rows)."""
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            t = tracking_events.c
            hits = t.kind.in_(["open", "click"])
            rows = conn.execute(sa.select(t.kind, t.machine, t.at).where(hits, t.id > since))
            return sorted((r.kind, r.machine, r.at.isoformat()) for r in rows)
    finally:
        store.close()


def click(delivery: str, seconds: int, link: str) -> Hit:
    """A person's click on `link` of an email, `seconds` into NEXT_DAY."""
    return Hit(HitKind.CLICK, delivery, NEXT_DAY + timedelta(seconds=seconds), "GET", BROWSER,
               "203.0.113.7", f"https://acme.test/{link}")  # fmt: skip


def opened_at(store: Store, delivery: str, domain: str) -> datetime | None:
    """`outbox.opened_at` of one email, naive UTC (as both databases compare)."""
    with store.reading() as conn:
        found = conn.execute(
            sa.select(outbox.c.opened_at).where(outbox.c.message_id == f"{delivery}@{domain}")
        ).scalar_one()
    return None if found is None else found.replace(tzinfo=None)


def opens(shop: Shop, n: int, *, agent: str = BROWSER) -> tuple[list[Hit], str]:
    """`n` opens, a few microseconds apart, of the first emails sent (round and round)."""
    emails = sent(shop)
    return [
        Hit(HitKind.OPEN, emails[i % len(emails)][0], NEXT_DAY + timedelta(microseconds=7 * i + 1),
            "GET", agent, "203.0.113.7")
        for i in range(n)
    ], emails[0][1]  # fmt: skip


def test_a_batch_is_classified_and_stored_by_the_child_and_reported(module_shop: Shop) -> None:
    """What the child says it stored is what the database holds: each hit once, with its
    class and its time to the microsecond."""
    since = last_id(module_shop, tracking_events)
    batch, domain = opens(module_shop, 3)
    writer = HitProcess(module_shop.db_url, domain)
    try:
        assert writer.write(batch) == {("open", "human"): 3}
        machine, _ = opens(module_shop, 2, agent="Mozilla/5.0")
        assert writer.write(machine) == {("open", "machine"): 2}
    finally:
        writer.close()
    found = stored(module_shop, since)
    assert len(found) == 5
    assert sum(1 for kind, machine, _ in found if kind == "open" and machine) == 2
    times = {at for _, _, at in found}
    assert {h.at.replace(tzinfo=None).isoformat() for h in batch} <= {
        t.split("+")[0] for t in times
    }


def test_a_dead_child_is_replaced_and_nothing_is_written_twice(module_shop: Shop) -> None:
    """SIGKILL the child between batches: the next batch starts another one and is stored
    once."""
    since = last_id(module_shop, tracking_events)
    batch, domain = opens(module_shop, 4)
    writer = HitProcess(module_shop.db_url, domain)
    try:
        writer.write(batch[:2])
        first = writer._proc
        assert first is not None
        first.kill()
        first.wait()
        assert writer.write(batch[2:]) == {("open", "human"): 2}
        assert writer._proc is not None
        assert writer._proc.pid != first.pid
    finally:
        writer.close()
    assert len(stored(module_shop, since)) == 4


def test_the_child_ignores_sigterm_and_stops_when_its_input_closes(module_shop: Shop) -> None:
    """A service manager's SIGTERM reaches every process of the group: the child keeps
    going so the parent can drain through it, then exits cleanly when told (stdin closed)."""
    since = last_id(module_shop, tracking_events)
    batch, domain = opens(module_shop, 3)
    writer = HitProcess(module_shop.db_url, domain)
    writer.write(batch[:1])  # the child has started and answered
    child = writer._proc
    assert child is not None
    os.kill(child.pid, signal.SIGTERM)
    os.kill(child.pid, signal.SIGINT)
    assert writer.write(batch[1:]) == {("open", "human"): 2}
    assert writer._proc is child
    writer.close()
    assert child.returncode == 0
    assert len(stored(module_shop, since)) == 3


def test_a_database_the_child_cannot_write_is_an_error_the_parent_retries(
    module_shop: Shop,
) -> None:
    """A batch that was not stored is never reported as stored: the parent gets an error
    naming the cause (and its writer thread keeps the batch for the next attempt)."""
    since = last_id(module_shop, tracking_events)
    batch, domain = opens(module_shop, 1)
    writer = HitProcess(f"sqlite:///{module_shop.root / 'no-such-folder' / 'x.db'}", domain)
    try:
        with pytest.raises(HitWriteError, match="unable to open database file"):
            writer.write(batch)
    finally:
        writer.close()
    assert stored(module_shop, since) == []


def test_a_burst_then_a_real_open_in_one_batch_leaves_the_email_opened(module_shop: Shop) -> None:
    """The writer reads each email's first open with the batch; a burst in that batch
    takes back the open a click implied, and a person's open after it in the same batch
    still marks the email opened (the stats' unique opens read that mark)."""
    from dripper.services.hits import record_hits

    delivery, domain = sent(module_shop)[OPENED]  # its own email
    store = open_store(module_shop.db_url)
    try:
        assert record_hits(store, domain, [click(delivery, 0, "a")]) == {
            ("click", "human"): 1,
            ("open", "human"): 1,  # implied by the click
        }
        later_open = Hit(HitKind.OPEN, delivery, NEXT_DAY + timedelta(seconds=3), "GET",
                         BROWSER, "203.0.113.7")  # fmt: skip
        record_hits(store, domain, [click(delivery, 1, "b"), click(delivery, 2, "c"), later_open])
        first = opened_at(store, delivery, domain)
    finally:
        store.close()
    assert first is not None
    assert first == later_open.at.replace(tzinfo=None)


@pytest.mark.parametrize("split", [0, 1], ids=["one batch", "first click alone"])
def test_a_person_clicking_after_a_burst_still_opened_the_email(
    module_shop: Shop, split: int
) -> None:
    """A robot's burst takes back the open its first click implied; a person's click
    after the burst window implies the open again, however the batches fall."""
    from dripper.services.hits import record_hits

    since = last_id(module_shop, tracking_events)
    delivery, domain = sent(module_shop)[OPENED + 1 + split]  # each split its own email
    clicks = [click(delivery, s, link) for s, link in ((0, "a"), (1, "b"), (2, "c"), (10, "d"))]
    store = open_store(module_shop.db_url)
    try:
        for batch in ([clicks[:split], clicks[split:]] if split else [clicks]):
            record_hits(store, domain, batch)
        with store.reading() as conn:
            t = tracking_events.c
            opens = conn.execute(
                sa.select(t.at).where(t.kind == "open", t.machine.is_(False), t.id > since)
            ).scalars()
            open_times = [at.replace(tzinfo=None) for at in opens]
        first = opened_at(store, delivery, domain)
    finally:
        store.close()
    assert open_times == [clicks[3].at.replace(tzinfo=None)]
    assert first is not None
    assert first == clicks[3].at.replace(tzinfo=None)


def test_after_close_no_child_is_started_again(module_shop: Shop) -> None:
    """Shutdown is final: a writer thread still retrying after serve closed its writer
    process gets an error, not a new child that would outlive serve."""
    since = last_id(module_shop, tracking_events)
    batch, domain = opens(module_shop, 1)
    writer = HitProcess(module_shop.db_url, domain)
    writer.write(batch)
    writer.close()
    with pytest.raises(HitWriteError, match="closed"):
        writer.write(batch)
    assert writer._proc is None
    assert len(stored(module_shop, since)) == 1


def test_first_opens_and_clicks_are_marked_once_and_never_moved(module_shop: Shop) -> None:
    """`outbox.opened_at`/`clicked_at`: an email clicked by a person gets both (the open the
    click implies), one only opened gets only its open, a machine's hit marks nothing, and
    a column once set keeps its time even when an earlier hit is written later."""
    from dripper.store import tracking

    store = open_store(module_shop.db_url)
    try:
        with store.reading() as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.customer_id)
                .where(outbox.c.message_id.is_not(None))
                .order_by(outbox.c.id)
            ).all()
        (a, ca), (b, cb), (c, cc) = rows[OPENED + 3 : OPENED + 6]  # emails of its own
        t1, t2 = NEXT_DAY + timedelta(seconds=10), NEXT_DAY + timedelta(seconds=20)

        def hit(
            outbox_id: int, customer_id: int, kind: str, at: datetime, machine: bool = False
        ) -> tracking.StoredHit:
            return tracking.StoredHit(outbox_id, customer_id, kind, at, machine, None, None, {})

        def firsts(outbox_id: int) -> tuple[datetime | None, datetime | None]:
            with store.reading() as conn:
                o, k = conn.execute(
                    sa.select(outbox.c.opened_at, outbox.c.clicked_at).where(
                        outbox.c.id == outbox_id
                    )
                ).one()
            return (o and o.replace(tzinfo=None), k and k.replace(tzinfo=None))

        naive = {t: t.replace(tzinfo=None) for t in (t1, t2)}
        with store.transaction() as conn:
            tracking.mark_firsts(
                conn,
                [hit(a, ca, "open", t1), hit(a, ca, "click", t1), hit(b, cb, "open", t2),
                 hit(c, cc, "open", t1, machine=True), hit(c, cc, "click", t1, machine=True)],
            )  # fmt: skip
        assert firsts(a) == (naive[t1], naive[t1])
        assert firsts(b) == (naive[t2], None)
        assert firsts(c) == (None, None)
        with store.transaction() as conn:
            tracking.mark_firsts(
                conn,
                [hit(a, ca, "click", NEXT_DAY), hit(b, cb, "open", t1), hit(b, cb, "click", t2)],
            )
        assert firsts(a) == (naive[t1], naive[t1])  # already set: not moved
        assert firsts(b) == (naive[t2], naive[t2])  # the open kept, the click added
    finally:
        store.close()

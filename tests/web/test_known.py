"""What `serve` remembers of PostgreSQL's deliveries (`dripper.store.known`, migration 0009):
the recent sends, each new one as its trigger announces it, and nothing once a send is
deleted. Against a real PostgreSQL, directly and through a real `dripper serve`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from dripper.store import known as known_module
from dripper.store import migrate, open_store
from dripper.store.known import APPLICATION, CHANNEL, KnownDeliveries
from dripper.store.schema import customers, outbox
from tests.support.serve import ServeProcess, Shop, links, lookups
from tests.web.conftest import DAY20

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def message_ids(shop: Shop, *where: sa.ColumnElement[bool]) -> list[str]:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            query = sa.select(outbox.c.message_id).where(outbox.c.message_id.is_not(None), *where)
            return [str(m) for m in conn.execute(query).scalars()]
    finally:
        store.close()


def execute(shop: Shop, sql: str, **params: object) -> list[sa.Row[object]]:
    """One statement in a transaction of its own (committed: notifications go out)."""
    store = open_store(shop.db_url)
    try:
        with store.transaction() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        store.close()


def conninfo(shop: Shop) -> str:
    url = sa.make_url(shop.db_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Notifications arrive when they arrive: wait for `check`, never forever."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.01)


def remembering(shop: Shop, body: Callable[[KnownDeliveries], Awaitable[None]]) -> None:
    async def run() -> None:
        known = KnownDeliveries(conninfo(shop))
        known.start()
        try:
            await until(lambda: known.live, "listening")
            await body(known)
        finally:
            await known.close()

    asyncio.run(run())


def test_the_sends_are_known_until_one_is_deleted(shop: Shop) -> None:
    """Every send stored when listening began is known and nothing else is; a send given
    its Message-ID later is known as soon as its commit is announced; after a `forget`
    (or any delete of sends) nothing is known until a lookup finds it again, and a lookup
    that began before the delete teaches nothing."""
    ada = message_ids(shop, outbox.c.customer_id == _customer(shop, "ada@example.com"))
    everyone = message_ids(shop)
    assert ada
    assert len(everyone) > len(ada)

    async def body(known: KnownDeliveries) -> None:
        assert all(known.known(m) for m in everyone)
        assert not known.known("0" * 26 + "@acme.test")

        # Another shop's schema in the same database: its deletes are none of ours. A
        # notice of our own sent after them has come, so they came too (in order).
        notify = "SELECT pg_notify(:channel, :payload)"
        execute(shop, notify, channel=CHANNEL, payload="deleted 1a2b some_other_shop")
        execute(shop, notify, channel=CHANNEL, payload="sent x1@acme.test elsewhere")
        execute(shop, notify, channel=CHANNEL, payload=f"sent probe@acme.test {known.schema}")
        await until(lambda: known.known("probe@acme.test"), "our own notice")
        assert all(known.known(m) for m in everyone)
        assert not known.known("x1@acme.test")

        # A send claimed now: its Message-ID is set, its commit announced.
        execute(shop, "UPDATE outbox SET message_id = NULL WHERE message_id = :m", m=ada[0])
        await until(lambda: not known.known(everyone[-1]), "a cleared Message-ID forgets all")
        fresh = "fresh0000000000000000000000@acme.test"
        execute(
            shop,
            "UPDATE outbox SET message_id = :f "
            "WHERE id = (SELECT min(id) FROM outbox WHERE message_id IS NULL)",
            f=fresh,
        )
        await until(lambda: known.known(fresh), "a new send is announced")

        # What lookups find is learnt again.
        since = known.generation
        known.learn(set(ada[1:]), since)
        assert all(known.known(m) for m in ada[1:])

        # Ada is forgotten: none of hers is known, nor anything else, at once.
        before_forget = known.generation
        store = open_store(shop.db_url)
        try:
            assert store.forget("ada@example.com", now=datetime.now(UTC))
        finally:
            store.close()
        await until(lambda: not known.known(ada[1]), "forget is announced")
        assert not known.known(fresh)
        # A lookup that started before the forget and answers after it teaches nothing.
        known.learn({ada[1]}, before_forget)
        assert not known.known(ada[1])

    remembering(shop, body)


def test_nothing_is_known_while_the_listening_connection_is_gone(shop: Shop) -> None:
    """A listening connection that PostgreSQL drops leaves nothing known (lookups ask the
    database); a new one is made and the recent sends read again."""
    everyone = message_ids(shop)

    async def body(known: KnownDeliveries) -> None:
        assert known.known(everyone[0])
        # Its own backend only: another xdist worker's serve listens in this database too.
        ended = execute(
            shop,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = :a AND datname = current_database() AND pid = :pid",
            a=APPLICATION,
            pid=known._pid,
        )
        assert [tuple(row) for row in ended] == [(True,)]
        await until(lambda: not known.live, "the lost connection is noticed")
        assert not known.known(everyone[0])
        await until(lambda: known.live, "listening again")
        assert all(known.known(m) for m in everyone)

    remembering(shop, body)


def test_deletes_of_one_transaction_are_each_heard(shop: Shop) -> None:
    """PostgreSQL merges identical notifications of one transaction: a delete, a claim and
    another delete in one transaction still leave the claimed send unknown (each delete's
    notice carries a nonce)."""
    first, second = message_ids(shop)[:2]
    claimed = "claimed000000000000000000@acme.test"

    async def body(known: KnownDeliveries) -> None:
        store = open_store(shop.db_url)
        try:
            with store.transaction() as conn:
                clear = "UPDATE outbox SET message_id = NULL WHERE message_id = :m"
                conn.execute(sa.text(clear), {"m": first})
                conn.execute(
                    sa.text("UPDATE outbox SET message_id = :c WHERE message_id = :m"),
                    {"c": claimed, "m": second},
                )
                conn.execute(sa.text(clear), {"m": claimed})
        finally:
            store.close()
        notify = "SELECT pg_notify(:channel, :payload)"
        execute(shop, notify, channel=CHANNEL, payload=f"sent probe@acme.test {known.schema}")
        await until(lambda: known.known("probe@acme.test"), "our own notice")
        assert not known.known(claimed)

    remembering(shop, body)


def downgraded(shop: Shop) -> None:
    store = open_store(shop.db_url)
    try:
        migrate.downgrade(store.engine, store.dialect, "0008")
    finally:
        store.close()


def test_without_the_triggers_nothing_is_ever_known(shop: Shop) -> None:
    """A database without migration 0009's triggers announces nothing: the memory stays
    off (every lookup asks) instead of trusting what it cannot hear."""
    downgraded(shop)
    everyone = message_ids(shop)

    async def run() -> None:
        known = KnownDeliveries(conninfo(shop))
        known.start()
        task = known._task
        assert task is not None
        try:
            await until(task.done, "the listener gives up")
            assert not known.live
            known.learn({everyone[0]}, known.generation)  # a lookup's answer: not kept
            assert not known.known(everyone[0])
        finally:
            await known.close()

    asyncio.run(run())


@pytest.mark.parametrize("how", ["downgrade", "disabled by hand"])
def test_triggers_that_go_while_listening_turn_the_memory_off(
    shop: Shop, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The downgrade says `stop` before it drops the triggers; a trigger disabled by hand
    is found by the next check. Either way the memory goes off and stays off."""
    monkeypatch.setattr(known_module, "CHECK", 0.2)
    everyone = message_ids(shop)

    async def body(known: KnownDeliveries) -> None:
        assert known.known(everyone[0])
        if how == "downgrade":
            downgraded(shop)
        else:
            execute(shop, "ALTER TABLE outbox DISABLE TRIGGER dripper_deliveries_deleted")
        task = known._task
        assert task is not None
        await until(task.done, "the listener gives up")
        assert not known.live
        assert not known.known(everyone[0])

    remembering(shop, body)


def test_serve_answers_known_emails_without_asking_and_forgets_at_once(
    shop: Shop, server: ServeProcess
) -> None:
    """Through a real `serve`: the links of emails sent before it started, and of one sent
    while it runs, are answered from memory (no database lookup); once the customer is
    forgotten, the very next request of each link is a 404."""
    thanks = links(shop.email_to("linus@example.com", "Thank you"), shop.base_url)
    # The recent sends are read just after start. Each pixel here is another email's, so
    # the first one answered from memory was read, not learnt from an earlier lookup.
    others = [
        u for m in shop.emails() for u in links(m, shop.base_url) if "/o/" in u and u not in thanks
    ]
    for pixel in others:
        assert httpx.get(pixel, headers={"user-agent": BROWSER}).status_code == 200
        if lookups(shop)["memory"] > 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("serve never answered from the sends it read at start")
    asked = lookups(shop)["database"]
    for url in thanks:
        if "/o/" in url or "/c/" in url:
            assert httpx.get(url, headers={"user-agent": BROWSER}).status_code in (200, 302)
    assert lookups(shop)["database"] == asked

    # Zoë buys while serve runs: her thank-you is announced as it is claimed.
    shop.ok("--now", DAY20, "event", "purchase", "zoe@example.com", "--data", '{"amount": 9}')
    shop.ok("--now", DAY20, "run", "--once")
    zoe = links(shop.email_to("zoe@example.com", "Thank you"), shop.base_url)
    hits = [u for u in zoe if "/o/" in u or "/c/" in u]
    assert hits
    for url in hits:
        assert httpx.get(url, headers={"user-agent": BROWSER}).status_code in (200, 302)
    assert lookups(shop)["database"] == asked

    shop.ok("customers", "forget", "zoe@example.com", "--yes")
    for url in zoe:
        assert httpx.get(url, follow_redirects=False).status_code == 404, url


def _customer(shop: Shop, email: str) -> int:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            found = conn.execute(sa.select(customers.c.id).where(customers.c.email == email))
            return int(found.scalar_one())
    finally:
        store.close()

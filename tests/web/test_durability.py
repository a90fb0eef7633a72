"""What `dripper serve` promises about what it was told, tested on a real process:

- SIGTERM: every open and click that got its answer is written before the process exits.
- SIGKILL in the middle of a burst: every unsubscribe that got its 200 is stored (it is
  written before the 200); opens and clicks answered in the last moments may be lost (they
  wait in the queue for their batch), never more than were answered, never half a batch.
- The database unreachable (PostgreSQL): /healthz says 503, an unsubscribe answers 503 and
  is not claimed, a click still redirects; when it is back, everything works again.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import customers, tracking_events
from tests.support.serve import ServeProcess, Shop, links
from tests.web.conftest import DAY20

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"


def stored_hits(shop: Shop) -> int:
    """Opens and clicks written, not counting the opens that clicks implied."""
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            rows = conn.execute(
                sa.select(tracking_events.c.data).where(
                    tracking_events.c.kind.in_(["open", "click"])
                )
            ).scalars()
            return sum(1 for data in rows if (data or {}).get("implied") != "click")
    finally:
        store.close()


def hit_urls(shop: Shop) -> list[str]:
    return [u for m in shop.emails() for u in links(m, shop.base_url) if "/o/" in u or "/c/" in u]


def burst(urls: list[str], count: int, stop: threading.Event | None = None) -> int:
    """`count` GETs spread over the URLs from 8 threads; how many got an answer."""
    answered = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal answered
        if stop is not None and stop.is_set():
            return
        try:
            response = client.get(urls[i % len(urls)])
        except httpx.HTTPError:
            return
        if response.status_code in (200, 302):
            with lock:
                answered += 1

    with (
        httpx.Client(headers={"user-agent": BROWSER}, timeout=10) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(one, range(count)))
    return answered


def test_sigterm_writes_every_answered_hit(shop: Shop) -> None:
    """2,000 answered opens and clicks, then SIGTERM: all 2,000 are in the database."""
    server = ServeProcess(shop, now=DAY20).start()
    answered = burst(hit_urls(shop), 2000)
    assert answered == 2000
    # uvicorn re-raises the signal once it has shut down: systemd counts that as clean.
    assert server.stop() in (0, -15)
    assert stored_hits(shop) == answered


def test_sigkill_during_a_burst_keeps_every_answered_unsubscribe(shop: Shop) -> None:
    """5,000 hits and a few unsubscribes at once; SIGKILL at a random moment. Every
    unsubscribe that got a 200 is stored; the hits stored are at most those answered."""
    server = ServeProcess(shop, now=DAY20).start()
    urls = hit_urls(shop)
    unsubscribes = sorted({u for m in shop.emails() for u in links(m, shop.base_url) if "/u/" in u})
    confirmed: list[str] = []
    stop = threading.Event()

    def unsubscribe_all() -> None:
        for url in unsubscribes:
            time.sleep(random.uniform(0.01, 0.1))
            try:
                if (
                    httpx.post(url, content=b"List-Unsubscribe=One-Click", timeout=10).status_code
                    == 200
                ):
                    confirmed.append(url)
            except httpx.HTTPError:
                return

    side = threading.Thread(target=unsubscribe_all)
    def kill() -> None:
        server.kill()
        stop.set()

    killer = threading.Timer(random.uniform(0.8, 2.0), kill)
    side.start()
    killer.start()
    answered = burst(urls, 5000, stop)
    killer.join()
    side.join()
    assert 0 < answered < 5000, "the kill should land in the middle of the burst"
    assert stored_hits(shop) <= answered
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            unsubscribed = {
                r.email
                for r in conn.execute(
                    sa.select(customers).where(customers.c.status == "unsubscribed")
                )
            }
    finally:
        store.close()
    confirmed_emails = {
        m["To"].addresses[0].addr_spec
        for m in shop.emails()
        for u in links(m, shop.base_url)
        if u in confirmed
    }
    assert confirmed_emails <= unsubscribed


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_database_outage_is_never_claimed_as_success(shop: Shop, pg_admin: sa.Engine) -> None:
    """The database refuses connections: /healthz 503, an unsubscribe 503 (stored later,
    when the mailbox provider retries), a click still redirects; then it comes back."""
    role = f"dripper_outage_{secrets.token_hex(4)}"
    schema = sa.make_url(shop.db_url).query["options"].split("=", 1)[1]  # type: ignore[union-attr]
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}")
        conn.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    url = sa.make_url(shop.db_url).set(username=role).render_as_string(hide_password=False)
    shop.config.write_text(shop.config.read_text().replace(shop.db_url, url))
    message = shop.email_to("ada@example.com", "Thank you")
    ours = links(message, shop.base_url)
    unsubscribe = next(u for u in ours if "/u/" in u)
    click = next(u for u in ours if "/c/" in u)
    try:
        with ServeProcess(shop, now=DAY20):
            with pg_admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER ROLE {role} NOLOGIN")
                conn.exec_driver_sql(TERMINATE.format(role=role))
            assert httpx.get(f"{shop.base_url}/healthz").status_code == 503
            down = httpx.post(unsubscribe, content=b"List-Unsubscribe=One-Click")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "60"
            redirect = httpx.get(click, headers={"user-agent": BROWSER})
            assert redirect.status_code == 302  # the target is in the token
            with pg_admin.connect() as conn:
                ada = conn.execute(
                    sa.text(
                        f"SELECT status FROM {schema}.customers WHERE email = 'ada@example.com'"
                    )
                ).scalar_one()
                assert ada == "subscribed"
                conn.exec_driver_sql(f"ALTER ROLE {role} LOGIN")
            assert httpx.get(f"{shop.base_url}/healthz").status_code == 200
            assert httpx.post(unsubscribe, content=b"List-Unsubscribe=One-Click").status_code == 200
    finally:
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(TERMINATE.format(role=role))
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
    store = open_store(shop.db_url)
    try:
        assert store.get_customer("ada@example.com").status.value == "unsubscribed"  # type: ignore[union-attr]
    finally:
        store.close()

"""What `dripper serve` promises about what it was told, tested on a real process:

- SIGTERM: every open and click that got its answer is written before the process exits.
- SIGKILL in the middle of a burst: every unsubscribe that got its 200 is stored (it is
  written before the 200), and so is every one-click answer; opens and clicks answered in
  the last moments may be lost (they wait in the queue for their batch), never more than
  were answered.
- The database unreachable (PostgreSQL): /healthz says 503, an unsubscribe answers 503 and
  is not claimed, a click still redirects; when it is back, everything works again.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from dripper.inbound.samples import reply
from dripper.store import open_store
from dripper.store.schema import customers, tracking_events
from dripper.tokens import Keyring
from tests.support.serve import API_TOKEN, SECRET, ServeProcess, Shop, links
from tests.web.conftest import DAY20

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"


def stored_hits(shop: Shop) -> int:
    """Opens and clicks written, not counting the opens that clicks and answers implied."""
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            rows = conn.execute(
                sa.select(tracking_events.c.data).where(
                    tracking_events.c.kind.in_(["open", "click"])
                )
            ).scalars()
            return sum(1 for data in rows if (data or {}).get("implied") is None)
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
    """5,000 hits, and unsubscribes and one-click answers sent over and over until the
    end; SIGKILL at a random moment. Every unsubscribe and every answer that got its 200
    is stored; the hits stored are at most those answered."""
    server = ServeProcess(shop, now=DAY20).start()
    urls = hit_urls(shop)
    # (url, customer, the answer it gives or None for an unsubscribe)
    written: list[tuple[str, str, str | None]] = []
    for message in shop.emails():
        to = message["To"].addresses[0].addr_spec
        for url in links(message, shop.base_url):
            if "/u/" in url:
                written.append((url, to, None))
            elif "/a/" in url:
                written.append((url, to, _answer_of(url)))
    assert any(a is None for _, _, a in written)
    assert any(a for _, _, a in written)
    confirmed: list[tuple[str, str | None]] = []
    stop = threading.Event()
    both = threading.Event()  # an unsubscribe and an answer have had their 200

    def keep_writing() -> None:
        # Until the kill, so some are in flight when it lands.
        with httpx.Client(headers={"user-agent": BROWSER}, timeout=10) as client:
            while not stop.is_set():
                url, to, answer = random.choice(written)
                try:
                    if answer is None:
                        response = client.post(url, content=b"List-Unsubscribe=One-Click")
                    else:
                        response = client.get(url)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    confirmed.append((to, answer))
                    kinds = {a is None for _, a in confirmed}
                    if kinds == {True, False}:
                        both.set()

    side = threading.Thread(target=keep_writing)

    def kill() -> None:
        server.kill()
        stop.set()

    side.start()
    if not both.wait(30):
        stop.set()
        side.join()
        raise AssertionError("no unsubscribe and answer confirmed before the burst")
    killer = threading.Timer(random.uniform(0.8, 2.0), kill)
    killer.start()
    answered = burst(urls, 5000, stop)
    killer.join()
    side.join()
    assert 0 < answered < 5000, "the kill should land in the middle of the burst"
    assert stored_hits(shop) <= answered
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            unsubscribed = set(
                conn.execute(
                    sa.select(customers.c.email).where(customers.c.status == "unsubscribed")
                ).scalars()
            )
            answers = {
                (email, (data or {}).get("answer"))
                for email, data in conn.execute(
                    sa.select(customers.c.email, tracking_events.c.data)
                    .join(customers, customers.c.id == tracking_events.c.customer_id)
                    .where(tracking_events.c.kind == "answer")
                )
            }
    finally:
        store.close()
    assert {to for to, a in confirmed if a is None} <= unsubscribed
    assert {(to, a) for to, a in confirmed if a is not None} <= answers


def _answer_of(url: str) -> str:
    """The answer a one-click answer link gives (its token's fourth part, base64url)."""
    encoded = url.rsplit("/", 1)[1].split(".")[4]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_database_outage_is_never_claimed_as_success(shop: Shop, pg_admin: sa.Engine) -> None:
    """The database refuses connections: /healthz 503, an unsubscribe and an answer 503
    (stored later, when the mailbox provider or the person retries), the events API and
    /inbound a JSON 503 with Retry-After, a signup and a confirmation 503 with Retry-After
    (never the "check your inbox" page for a signup not stored), a click still redirects;
    then it comes back."""
    role = f"dripper_outage_{secrets.token_hex(4)}"
    schema = sa.make_url(shop.db_url).query["options"].split("=", 1)[1]  # type: ignore[union-attr]
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}")
        conn.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    url = sa.make_url(shop.db_url).set(username=role).render_as_string(hide_password=False)
    text = shop.config.read_text().replace(shop.db_url, url)
    shop.config.write_text(text.replace("enabled = false", "enabled = true", 1))  # [signup]
    confirm = f"{shop.base_url}/s/{Keyring.from_secret(SECRET).sign_signup('a' * 26)}"
    message = shop.email_to("ada@example.com", "Thank you")
    ours = links(message, shop.base_url)
    unsubscribe = next(u for u in ours if "/u/" in u)
    click = next(u for u in ours if "/c/" in u)
    answer = next(u for m in shop.emails() for u in links(m, shop.base_url) if "/a/" in u)
    bearer = {"authorization": f"Bearer {API_TOKEN}"}
    event = {"type": "purchase", "email": "ada@example.com", "data": {"amount": 12}}
    try:
        with ServeProcess(shop, now=DAY20):
            with pg_admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER ROLE {role} NOLOGIN")
                conn.exec_driver_sql(TERMINATE.format(role=role))
            health = httpx.get(f"{shop.base_url}/healthz")
            assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
            down = httpx.post(unsubscribe, content=b"List-Unsubscribe=One-Click")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "60"
            not_answered = httpx.get(answer, headers={"user-agent": BROWSER})
            assert not_answered.status_code == 503
            assert not_answered.headers["retry-after"] == "60"
            # The events API and the inbound webhook: a JSON error, and the sender retries.
            for path, body, kind in (
                ("/api/events", json.dumps(event).encode(), "application/json"),
                ("/inbound", reply(message, "Is the Ethiopia back in stock?"), "message/rfc822"),
            ):
                refused = httpx.post(
                    f"{shop.base_url}{path}",
                    content=body,
                    headers={**bearer, "content-type": kind},
                )
                assert refused.status_code == 503, (path, refused.text)
                assert refused.json()["error"].startswith("not recorded, try again")
                assert refused.headers["retry-after"] == "60"
            signup = httpx.post(f"{shop.base_url}/subscribe", data={"email": "r@example.com"})
            assert signup.status_code == 503
            assert signup.headers["retry-after"] == "60"
            assert "Check your inbox" not in signup.text
            as_json = httpx.post(f"{shop.base_url}/subscribe", json={"email": "r@example.com"})
            assert (as_json.status_code, as_json.headers["retry-after"]) == (503, "60")
            assert httpx.post(confirm).status_code == 503
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
            health = httpx.get(f"{shop.base_url}/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            assert httpx.post(unsubscribe, content=b"List-Unsubscribe=One-Click").status_code == 200
            assert httpx.get(answer, headers={"user-agent": BROWSER}).status_code == 200
            back = httpx.post(f"{shop.base_url}/subscribe", data={"email": "r@example.com"})
            assert back.status_code == 200
            assert httpx.post(confirm).status_code == 404  # no such signup: now it can tell
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

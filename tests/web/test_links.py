"""Every link in every email dripper sent, followed on a real `dripper serve` over HTTP, on
SQLite and PostgreSQL: pixels, clicks, unsubscribe pages, one-click answers and referral
links all answer as DESIGN 8 says; bad tokens of every kind get the same 404.

Most tests share one shop and one serve per database (tests/web/conftest.py): each uses
emails no other shared test touches, and counts the rows it added (ids past the last one
once serve has settled). Following every link, unsubscribing (and sending again) and
forgetting change what the others read: those tests have a shop of their own."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from dripper.inbound.samples import reply
from dripper.store import open_store
from dripper.store.schema import customers, events, outbox, tracking_events
from dripper.tokens import Keyring, SigningKey
from tests.support.serve import (
    API_TOKEN,
    SECRET,
    ServeProcess,
    Shop,
    last_id,
    links,
    lookups,
    samples,
    settle,
)

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


def rows(shop: Shop, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[sa.Row[object]]:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            return list(conn.execute(sa.select(table).where(*where)))
    finally:
        store.close()


def wait_for_hits(shop: Shop, count: int, since: int = 0) -> list[sa.Row[object]]:
    """Opens and clicks are written in batches: wait for the writer, never forever. Those
    stored after row `since` (a shared shop's earlier tests stored the rest)."""
    deadline = time.monotonic() + 10
    hits = tracking_events.c.kind.in_(["open", "click"])
    while True:
        found = rows(shop, tracking_events, hits, tracking_events.c.id > since)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def offer(shop: Shop, to: str) -> EmailMessage:
    """The second-sale offer to `to` (either subject variant): the one with the answers."""
    for message in shop.emails():
        if to in str(message["To"]) and any(".cG9vcg." in u for u in links(message, shop.base_url)):
            return message
    raise AssertionError(f"no offer to {to}")


def test_every_link_in_every_sent_email_resolves(shop: Shop, server: ServeProcess) -> None:
    """No 404, no 5xx: each tracked link of each .eml that `run --once` wrote answers with
    what its route promises, and a click goes exactly where the template linked."""
    messages = shop.emails()
    assert len(messages) >= 6
    seen_kinds: set[str] = set()
    with httpx.Client(base_url=shop.base_url, headers={"user-agent": BROWSER}) as client:
        for message in messages:
            for url in links(message, shop.base_url):
                kind = urlsplit(url).path.split("/")[1]
                seen_kinds.add(kind)
                if kind == "u":
                    continue  # GET only: the unsubscribe tests post
                answer = client.get(url)
                assert answer.status_code in (200, 302), (url, answer.status_code)
                assert answer.headers["referrer-policy"] == "no-referrer"
                assert "set-cookie" not in answer.headers
                if kind == "c":
                    assert answer.status_code == 302
                    token = urlsplit(url).path.split("/")[2]
                    target = base64.urlsafe_b64decode(token.split(".")[3] + "==").decode()
                    assert answer.headers["location"] == target
                elif kind == "o":
                    assert answer.headers["content-type"] == "image/gif"
                    assert answer.headers["cache-control"] == "no-store"
                    assert answer.content.startswith(b"GIF89a")
                elif kind == "r":
                    location = urlsplit(answer.headers["location"])
                    assert location.netloc == "acme.test"
                    assert re.fullmatch(r"[0-9a-f]{16}", parse_qs(location.query)["ref"][0])
                else:
                    assert answer.status_code == 200, (url, answer.text[:200])
            for url in links(message, shop.base_url):
                if "/u/" in url:
                    page = httpx.get(url)
                    assert page.status_code == 200
                    # [topics]: the preference page, in the customer's language
                    assert "name='action' value='stop'" in page.text
                    assert "name='topics' value='news'" in page.text
    assert seen_kinds == {"o", "c", "u", "a", "r"}


def test_opens_and_clicks_are_stored_with_their_class(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """A browser's click and a pixel fetched by Apple's proxy are both stored: the click as
    human (with the open it implies), the prefetch as a machine open; a HEAD is a scanner."""
    settle(module_shop)
    since = last_id(module_shop, tracking_events)
    thanks = module_shop.email_to("grace@example.com", "Thank you")
    urls = links(thanks, module_shop.base_url)
    pixel = next(u for u in urls if "/o/" in u)
    click = next(u for u in urls if "/c/" in u)
    assert httpx.get(pixel, headers={"user-agent": "Mozilla/5.0"}).status_code == 200
    assert httpx.head(click, headers={"user-agent": BROWSER}).status_code == 302
    assert httpx.get(click, headers={"user-agent": BROWSER}).status_code == 302
    found = wait_for_hits(module_shop, 4, since)
    settle(module_shop)  # and nothing more than these four comes
    found = wait_for_hits(module_shop, 4, since)
    summary = sorted((r.kind, r.machine, (r.data or {}).get("reason", "")) for r in found)
    assert summary == [
        ("click", False, "a person's browser"),
        ("click", True, "HEAD request (browsers GET)"),
        ("open", False, "implied by a click"),
        ("open", True, "Apple Mail Privacy Protection (user agent)"),
    ]


def test_one_click_unsubscribe_is_stored_and_the_next_run_sends_nothing(
    shop: Shop, server: ServeProcess
) -> None:
    """RFC 8058: POST `List-Unsubscribe=One-Click` to the header's URL answers 200 (no
    redirect, no cookie) only once it is stored; a repeat is 200 too and changes nothing;
    the next runs send that customer nothing, planned or scheduled."""
    message = shop.email_to("grace@example.com", "Thank you")
    header = str(message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.findall(r"<(http[^>]+)>", header)[0]
    assert httpx.get(url).status_code == 200  # GET changes nothing
    assert httpx.head(url).status_code == 200  # nor does a link checker's HEAD
    assert rows(shop, customers, customers.c.email == "grace@example.com")[0].status == (
        "subscribed"
    )
    for _ in range(2):
        answer = httpx.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200
        assert "set-cookie" not in answer.headers
        assert "You are unsubscribed" in answer.text
    grace = rows(shop, customers, customers.c.email == "grace@example.com")[0]
    assert grace.status == "unsubscribed"
    marked = rows(shop, tracking_events, tracking_events.c.kind == "unsubscribe")
    assert [(r.customer_id, r.data["how"]) for r in marked] == [(grace.id, "one-click")]
    # Another purchase and the next newsletter run: nothing for Grace.
    shop.ok("--now", "2027-02-10T12:00:00Z", "event", "purchase", "grace@example.com")
    before = {str(m["Message-ID"]) for m in shop.emails()}
    shop.ok("--now", "2027-02-10T12:00:00Z", "run", "--once")
    shop.ok("--now", "2027-02-16T23:30:00Z", "run", "--once")  # the newsletter's 2nd run
    after = [m for m in shop.emails() if str(m["Message-ID"]) not in before]
    assert len(after) >= 4, "the newsletter should have gone to the others"
    assert not [m for m in after if "grace@example.com" in str(m["To"])]


def test_an_oversized_unsubscribe_body_is_refused_and_changes_nothing(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """A POST to /u/ over 4 KiB is a 413, whether its length is declared or it comes in
    chunks; the customer stays subscribed."""
    message = module_shop.email_to("grace@example.com", "Thank you")
    url = re.findall(r"<(http[^>]+)>", str(message["List-Unsubscribe"]))[0]
    body = b"List-Unsubscribe=One-Click&" + b"x" * 5000

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    answer = httpx.post(url, content=body)
    assert answer.status_code == 413
    assert "set-cookie" not in answer.headers
    try:  # the server may answer and close before the last chunk is sent: refused too
        chunked = httpx.post(url, content=chunks())
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass
    else:
        assert chunked.status_code == 413
    grace = rows(module_shop, customers, customers.c.email == "grace@example.com")[0]
    assert grace.status == "subscribed"


def test_every_answer_keeps_its_url_out_of_referers(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """Pages, pixels, redirects, JSON (the API's successes and errors), the health check and
    the metrics: each says `Referrer-Policy: no-referrer` and sets no cookie."""
    message = module_shop.email_to("ada@example.com", "Thank you")
    ours = links(message, module_shop.base_url)
    bearer = {"authorization": f"Bearer {API_TOKEN}"}
    event = {"type": "visit", "email": "ada@example.com"}
    agent = {"user-agent": BROWSER}
    with httpx.Client(base_url=module_shop.base_url, headers=agent) as client:
        answers = [client.get(u) for u in ours]
        answers += [
            client.get("/healthz"),
            client.get("/metrics"),
            client.get("/nope"),
            client.post("/api/events", json=event, headers=bearer),  # 200
            client.post("/api/events", json=event),  # 401
            client.post("/api/events", content=b"{", headers=bearer),  # 400
            client.post("/inbound", content=reply(message, "Hello!"), headers=bearer),  # 200
        ]
    assert {a.status_code for a in answers} >= {200, 302, 400, 401, 404}
    for answer in answers:
        assert answer.headers.get("referrer-policy") == "no-referrer", answer.request.url
        assert "set-cookie" not in answer.headers


def test_bad_tokens_get_the_same_404(module_shop: Shop, module_server: ServeProcess) -> None:
    """Forged, truncated, preview-key, wrong-kind, unknown-delivery: a 404 page with no
    Location and nothing recorded, whatever the route."""
    settle(module_shop)
    since = last_id(module_shop, tracking_events)
    good = links(module_shop.email_to("ada@example.com", "Thank you"), module_shop.base_url)
    click = next(u for u in good if "/c/" in u)
    token = urlsplit(click).path.split("/")[2]
    keyring = Keyring([SigningKey.derive(SECRET)])
    preview = Keyring.preview()
    bad = [
        f"/c/{token[:-1]}{'B' if token.endswith('A') else 'A'}",  # forged signature
        f"/c/{token[:20]}",  # truncated
        f"/c/{token.replace('.c.', '.o.', 1)}",  # kind changed: signature breaks
        f"/o/{token}",  # a click token at the pixel
        f"/c/{preview.sign_click('abcdefgh2345', 'https://evil.example/')}",
        f"/u/{preview.sign_unsubscribe('abcdefgh2345')}",
        f"/c/{keyring.sign_click('unknowndelivery2345', 'https://acme.test/')}",
        f"/o/{keyring.sign_open('unknowndelivery2345')}",
        f"/u/{keyring.sign_unsubscribe('unknowndelivery2345')}",
        f"/a/{keyring.sign_answer('unknowndelivery2345', 'rating', '5')}",
        f"/r/{keyring.sign_referral('0123456789abcdef')}",
        "/c/",
        "/nope",
        "/c/%00",
        f"/c/{token}/",  # a good token, but not one path segment (as the router sees it)
        f"/c/{token}/x",
        f"/c/{token}%2Fx",
    ]
    with httpx.Client(base_url=module_shop.base_url) as client:
        for path in bad:
            # A link scanner's HEAD gets the same 404 as a GET (with no body).
            for method in ("GET", "POST") if path.startswith("/u/") else ("GET", "HEAD"):
                answer = client.request(method, path)
                assert answer.status_code == 404, (method, path, answer.status_code)
                assert "location" not in answer.headers
                if method != "HEAD":
                    assert "This link does not work" in answer.text
    settle(module_shop)  # anything they had queued is written by now
    assert rows(module_shop, tracking_events, tracking_events.c.id > since) == []


def test_a_forgotten_customers_links_stop_working(shop: Shop, server: ServeProcess) -> None:
    """After `customers forget`, every link of their emails is a 404 at once, even those
    the server had just answered (and, on PostgreSQL, remembered): no redirect, nothing
    recorded about them."""
    urls = links(shop.email_to("linus@example.com", "Thank you"), shop.base_url)
    hits = [u for u in urls if "/o/" in u or "/c/" in u]
    for _ in range(2):  # the second time, on PostgreSQL, from serve's memory
        for url in hits:
            assert httpx.get(url).status_code in (200, 302), url
    assert len(wait_for_hits(shop, 2 * len(hits))) >= 2 * len(hits)
    if shop.db_url.startswith("postgresql"):
        assert lookups(shop)["memory"] > 0
    shop.ok("customers", "forget", "linus@example.com", "--yes")
    for url in urls:
        assert httpx.get(url).status_code == 404, url
    assert rows(shop, tracking_events) == []


def test_answers_are_recorded_once_and_reach_the_customer_sheet(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """A person's "Not for me" records a feedback event, sets first_bag on the sheet and
    starts the follow-up campaign; clicking again changes nothing; a link scanner's visit
    answers nothing."""
    since = last_id(module_shop, events)
    answers = [
        u
        for m in module_shop.emails()
        if "grace@example.com" in str(m["To"])
        for u in links(m, module_shop.base_url)
        if "/a/" in u
    ]
    poor = next(u for u in answers if ".cG9vcg." in u)  # base64url of "poor"
    scanned = httpx.get(poor, headers={"user-agent": "Mozilla/5.0 (compatible; Barracuda)"})
    assert scanned.status_code == 200
    feedback = events.c.type == "feedback"
    assert rows(module_shop, events, feedback, events.c.id > since) == []
    for _ in range(2):
        answer = httpx.get(poor, headers={"user-agent": BROWSER})
        assert answer.status_code == 200
        assert "Thank you!" in answer.text
    recorded = rows(module_shop, events, feedback, events.c.id > since)
    assert len(recorded) == 1
    assert recorded[0].data == {
        "question": "first_bag",
        "answer": "poor",
        "campaign": "welcome",
        "step": "second-sale",
    }
    grace = rows(module_shop, customers, customers.c.email == "grace@example.com")[0]
    assert grace.attributes["first_bag"] == "poor"
    shown = module_shop.ok("customers", "show", "grace@example.com").output
    assert "feedback-follow-up" in shown


# Each gap on another customer's newsletter: an email no other test of the module clicks.
ROBOT_READS = {0.0: "sam@example.com", 0.3: "maria@example.com"}


@pytest.mark.parametrize("gap", [0.0, 0.3])  # one batch; the earlier ones already stored
def test_a_robot_following_every_link_is_counted_as_a_scanner(
    module_shop: Shop, module_server: ServeProcess, gap: float
) -> None:
    """Three links of one email within seconds (a browser user agent, even): all three
    are scanner clicks, including the two that looked human, and the open they implied
    is gone."""
    settle(module_shop)
    since = last_id(module_shop, tracking_events)
    newsletter = module_shop.email_to(ROBOT_READS[gap], "better cup")
    first = next(u for u in links(newsletter, module_shop.base_url) if "/c/" in u)
    delivery = urlsplit(first).path.split("/")[2].split(".")[2]
    keyring = Keyring([SigningKey.derive(SECRET)])  # the shop's own links, three of them
    clicks = [
        f"{module_shop.base_url}/c/{keyring.sign_click(delivery, f'https://acme.test/{page}')}"
        for page in ("shop", "brewing-guides", "story")
    ]
    for url in clicks:
        assert httpx.get(url, headers={"user-agent": BROWSER}).status_code == 302
        time.sleep(gap)
    found = wait_for_hits(module_shop, 3, since)
    time.sleep(0.3)  # the batch that saw the third click
    found = wait_for_hits(module_shop, 3, since)
    assert sorted((r.kind, r.machine) for r in found) == [("click", True)] * 3
    # Nor does the email count as opened or clicked by a person in the stats.
    sent = rows(module_shop, outbox, outbox.c.id == found[0].outbox_id)[0]
    assert (sent.opened_at, sent.clicked_at) == (None, None)


def test_metrics_count_what_was_answered_and_written(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """/metrics (Prometheus text) counts each answered open and click by kind, the hits
    written (as many as the database gained) and their classes, the queue, each route's
    latency and where each delivery was found; the customer's pages allow no script, no
    image and no other site. (Serve is the module's: what this test did is what each
    count moved by.)"""
    from dripper.web.pages import CSP

    settle(module_shop)
    since = last_id(module_shop, tracking_events)
    before = samples(module_shop)

    thanks = module_shop.email_to("linus@example.com", "Thank you")
    urls = links(thanks, module_shop.base_url)
    pixel = next(u for u in urls if "/o/" in u)
    click = next(u for u in urls if "/c/" in u)
    page = next(u for u in urls if "/u/" in u)
    assert httpx.get(pixel, headers={"user-agent": BROWSER}).status_code == 200
    for _ in range(2):
        assert httpx.get(click, headers={"user-agent": BROWSER}).status_code == 302
    shown = httpx.get(page)
    assert shown.headers["content-security-policy"] == CSP
    assert "script-src" not in CSP
    assert "default-src 'none'" in CSP
    assert shown.headers["x-content-type-options"] == "nosniff"
    stored = len(wait_for_hits(module_shop, 3, since))

    stored_total = ("dripper_hits_stored_total", ())
    deadline = time.monotonic() + 10
    while True:  # the writer counts a batch once it is committed
        answer = httpx.get(f"{module_shop.base_url}/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        after = samples(module_shop)
        if after[stored_total] - before[stored_total] >= stored or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def moved(name: str, *labels: tuple[str, str]) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert moved("dripper_hits_total", ("kind", "open")) == 1
    assert moved("dripper_hits_total", ("kind", "click")) == 2
    assert moved("dripper_hits_stored_total") == stored
    # The hits written, by kind and class: one person's open, and their two clicks (the
    # open came first, so neither click implied another).
    classes = {
        (labels[1][1], labels[0][1]): moved(name, *labels)  # (kind, class)
        for (name, labels) in after
        if name == "dripper_hit_classes_total" and labels[1][1] in ("open", "click")
    }
    assert {key: n for key, n in classes.items() if n} == {
        ("open", "human"): 1,
        ("click", "human"): 2,
    }
    assert sum(classes.values()) == stored
    assert after[("dripper_hits_dropped_total", ())] == 0
    assert after[("dripper_hit_queue_depth", ())] == 0
    assert moved("dripper_request_seconds_count", ("route", "click")) == 2
    assert moved("dripper_request_seconds_count", ("route", "unsubscribe")) == 1
    # Each pixel and redirect looked its delivery up once: in memory (PostgreSQL, once
    # the recent sends are read) or in the database.
    answers = [moved("dripper_delivery_lookups_total", ("answer", a)) for a in
               ("memory", "database")]  # fmt: skip
    assert sum(answers) == 3


def test_replays_of_answers_and_referral_links_are_counted_not_stored(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """A scanner replaying a one-click answer, and a public referral link opened again and
    again the same day, add to a count on one row each, never a row per request (issue
    23): the table does not grow with the replays."""
    scanner = {"user-agent": "Mozilla/5.0 (compatible; Barracuda)"}
    # Linus's offer and Ada's referral request: no other test of the module opens them.
    answer = next(
        u
        for u in links(offer(module_shop, "linus@example.com"), module_shop.base_url)
        if "/a/" in u and ".cG9vcg." in u
    )
    ask = module_shop.email_to("ada@example.com", "A bag for a friend")
    referral = next(u for u in links(ask, module_shop.base_url) if "/r/" in u)
    since = last_id(module_shop, tracking_events)
    for _ in range(25):
        assert httpx.get(answer, headers=scanner).status_code == 200
        assert httpx.get(referral, headers={"user-agent": BROWSER}).status_code == 302
    added = tracking_events.c.id > since
    scanned = rows(module_shop, tracking_events, tracking_events.c.kind == "answer", added)
    assert len(scanned) == 1
    assert (scanned[0].machine, scanned[0].data["seen"]) == (True, 25)
    visits = rows(module_shop, tracking_events, tracking_events.c.kind == "referral", added)
    assert len(visits) == 1
    assert visits[0].data == {"visits": 25}

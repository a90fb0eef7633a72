"""A real `dripper serve` reached directly, as from the open internet with no proxy in front:
an oversized or endless request head gets 431, a slow client is cut off while others are
answered, connections past the limit get 503 with one warning, and a client that goes away
mid-body leaves no traceback. None of it depends on the database: SQLite only."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.serve import API_TOKEN, ServeProcess, Shop, links, make_shop
from tests.web.conftest import DAY20

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# Short, so that a slow client is cut off within seconds of the test's clock.
QUICK = ("--request-timeout", "2", "--keepalive-timeout", "1")
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: serve.test\r\n"


@pytest.fixture
def bare(tmp_path: Path, db_url: str) -> Shop:
    """A project with no emails sent: the limits need none."""
    return make_shop(tmp_path / "shop", db_url)


@pytest.fixture
def quick(bare: Shop) -> Iterator[ServeProcess]:
    """serve with a 2 s request timeout and a 1 s keep-alive."""
    with ServeProcess(bare, args=QUICK) as running:
        yield running


def connect(shop: Shop) -> socket.socket:
    return socket.create_connection(("127.0.0.1", shop.port), timeout=10)


def answer(sock: socket.socket, within: float = 5.0) -> bytes:
    """What the server sends until it closes the connection (or `within` seconds pass)."""
    sock.settimeout(within)
    received = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def one_response(sock: socket.socket) -> bytes:
    """One whole response on a kept-alive connection (its head and its content-length)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if b"content-length" in line)[16:])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received + body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def exchange(shop: Shop, request: bytes) -> bytes:
    with connect(shop) as sock:
        sock.sendall(request)
        return answer(sock)


def healthy(shop: Shop) -> bool:
    return httpx.get(f"{shop.base_url}/healthz", timeout=2).status_code == 200


def refused(shop: Shop) -> dict[str, float]:
    """`dripper_requests_refused_total` by reason, and `abandoned`, from /metrics."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{shop.base_url}/metrics").text):
        for sample in family.samples:
            if sample.name == "dripper_requests_refused_total":
                found[sample.labels["reason"]] = sample.value
            elif sample.name == "dripper_requests_abandoned_total":
                found["abandoned"] = sample.value
    return found


def test_an_oversized_head_gets_431_at_once(bare: Shop, quick: ServeProcess) -> None:
    """64 KiB of headers, 500 header lines, or a head that never ends past 16 KiB: 431
    within a second, and the server answers the next request; a head just under the
    limits (an 8 KiB cookie, 90 headers) is served; a malformed request is a 400 and an
    upgrade request plain HTTP, neither logged (a line per probe from the internet)."""
    started = time.monotonic()
    big = exchange(bare, HEALTHZ + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n")
    assert status(big) == 431, big[:200]
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(500))
    assert status(exchange(bare, HEALTHZ + many + b"\r\n")) == 431
    with connect(bare) as sock:  # 20 KiB of one header, never finished: refused anyway
        sock.sendall(HEALTHZ + b"X-Endless: " + b"a" * 20480)
        assert status(answer(sock)) == 431
    assert time.monotonic() - started < 3
    assert healthy(bare)
    near = HEALTHZ + b"Cookie: " + b"c" * 8192 + b"\r\n"
    near += b"".join(b"X-H%d: v\r\n" % i for i in range(88)) + b"Connection: close\r\n\r\n"
    assert status(exchange(bare, near)) == 200
    assert status(exchange(bare, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    upgrade = HEALTHZ + b"Connection: close, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert status(exchange(bare, upgrade)) == 200
    assert refused(bare)["head_too_large"] == 3
    assert refused(bare)["malformed"] == 1
    assert quick.log.read_text().strip().splitlines()[1:] == []  # the banner alone


def test_a_slow_client_is_cut_off_while_others_are_answered(
    bare: Shop, quick: ServeProcess
) -> None:
    """A head sent a byte a second gets 408 after the 2 s request timeout, a body sent a
    byte a second is cut off after it, a connection that sends nothing is closed; each
    second meanwhile a normal request is answered. An idle keep-alive ends after 1 s."""
    slow_head = connect(bare)
    slow_head.sendall(HEALTHZ)
    slow_body = connect(bare)
    slow_body.sendall(
        b"POST /api/events HTTP/1.1\r\nHost: serve.test\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    silent = connect(bare)
    started = time.monotonic()
    ended: dict[str, float] = {}
    heard: dict[str, bytes] = {}
    while len(ended) < 3 and time.monotonic() - started < 10:
        for name, sock in (("head", slow_head), ("body", slow_body), ("silent", silent)):
            if name in ended:
                continue
            if select.select([sock], [], [], 0)[0]:  # the server spoke or closed
                heard[name] = answer(sock, 1)
                ended[name] = time.monotonic() - started
                continue
            if name != "silent":
                try:
                    sock.sendall(b"x")
                except OSError:
                    ended[name] = time.monotonic() - started
        assert healthy(bare)
        time.sleep(1)
    for sock in (slow_head, slow_body, silent):
        sock.close()
    assert set(ended) == {"head", "body", "silent"}
    assert all(1.5 < seconds < 6 for seconds in ended.values()), ended
    assert status(heard["head"]) == 408
    assert heard.get("body", b"") == b""  # the route had the request: closed, no answer
    with connect(bare) as sock:
        sock.sendall(HEALTHZ + b"\r\n")
        assert status(one_response(sock)) == 200
        assert answer(sock, 3) == b""  # closed by the keep-alive timeout, not by us
    assert refused(bare)["too_slow"] == 3
    assert "Traceback" not in quick.log.read_text()


def test_connections_past_the_limit_get_503_and_one_warning(bare: Shop) -> None:
    """With --max-connections 4: four connections in the middle of a request hold every
    place, so five more each get 503 (and so does one while a refused one lingers), and
    the log says so once; an idle keep-alive
    connection is closed to make room instead; once the four go, requests are answered."""
    # Long timeouts: the held and idle connections stay until the test lets them go.
    limits = ("--max-connections", "4", "--request-timeout", "60", "--keepalive-timeout", "60")
    with ServeProcess(bare, args=limits) as server:
        held = [connect(bare) for _ in range(4)]
        for sock in held:
            sock.sendall(HEALTHZ)  # a head begun, not finished
        # Until serve has read those bytes, a held connection is idle to it (and may be
        # closed to make room): time enough even on a loaded machine (0.2 s was not).
        time.sleep(1.0)
        answers = [status(exchange(bare, HEALTHZ + b"\r\n")) for _ in range(5)]
        assert answers == [503] * 5
        # A refused connection still open (its client has not hung up; serve lingers to
        # drop what it sends) is not an idle one to close for room: the next is refused too.
        lingering = connect(bare)
        lingering.sendall(HEALTHZ + b"\r\n")
        assert status(one_response(lingering)) == 503
        assert status(exchange(bare, HEALTHZ + b"\r\n")) == 503
        lingering.close()
        for sock in held:
            sock.close()
        time.sleep(1.0)  # serve notices the four are gone
        idle = [connect(bare) for _ in range(4)]
        for sock in idle:
            sock.sendall(HEALTHZ + b"\r\n")
            assert status(one_response(sock)) == 200  # kept alive, idle now
        assert healthy(bare)  # a fifth: an idle one made room
        time.sleep(0.1)
        closed = [s for s in idle if select.select([s], [], [], 0)[0] and s.recv(1) == b""]
        assert len(closed) == 1
        for sock in idle:
            sock.close()
        assert refused(bare)["too_many_connections"] == 7
    warnings = [line for line in server.log.read_text().splitlines() if "max_connections" in line]
    assert len(warnings) == 1, warnings
    assert "4 connections open" in warnings[0]
    assert "answered 503" in warnings[0]


@pytest.fixture
def shop_server(shop: Shop) -> Iterator[ServeProcess]:
    """serve for the shop of tests/web/conftest.py (whose emails carry /u/ links)."""
    with ServeProcess(shop, now=DAY20, args=QUICK) as running:
        yield running


def test_a_client_gone_mid_body_leaves_no_traceback(shop: Shop, shop_server: ServeProcess) -> None:
    """A client that sends half a body and hangs up, on every route that reads one (/u/,
    /api/shopify, /api/events, /api/woocommerce, /inbound): nothing in serve's log, each
    counted as abandoned, and serve goes on answering."""
    thanks = shop.email_to("grace@example.com", "Thank you")
    unsubscribe = next(u for u in links(thanks, shop.base_url) if "/u/" in u)
    bearer = b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\n"
    routes = [
        (unsubscribe.removeprefix(shop.base_url).encode(), b""),
        (b"/api/shopify", b"X-Shopify-Topic: orders/create\r\n"),
        (b"/api/woocommerce", b"X-WC-Webhook-Topic: order.created\r\n"),
        (b"/api/events", bearer),
        (b"/inbound", bearer),
    ]
    for path, headers in routes:
        with connect(shop) as sock:
            sock.sendall(
                b"POST "
                + path
                + b" HTTP/1.1\r\nHost: serve.test\r\n"
                + headers
                + b"Content-Length: 3000\r\n\r\n"  # under every route's limit
                + b"{" * 1000
            )
            time.sleep(0.3)  # the route is reading the body
        time.sleep(0.2)
    assert healthy(shop)
    log = shop_server.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.strip().splitlines()[1:] == []  # the banner alone
    assert refused(shop)["abandoned"] == len(routes)


def test_the_limits_come_from_the_config_too(bare: Shop) -> None:
    """`[serve] request_timeout` in config.toml bounds a slow head as the option does."""
    bare.config.write_text(
        bare.config.read_text().replace("request_timeout = 20 ", "request_timeout = 2 ")
    )
    with ServeProcess(bare):
        slow = connect(bare)
        slow.sendall(HEALTHZ)  # a head never finished
        response = answer(slow, within=8)  # the default 20 s would say nothing by then
    assert status(response) == 408

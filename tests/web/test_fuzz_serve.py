"""Arbitrary paths, tokens, methods and bodies against a real `dripper serve`
(hypothesis), on both databases: never a 5xx, never a cookie, and never a redirect anywhere
but to a URL dripper signed (or the referral landing page).

Requests go out through `http.client`, which sends the path exactly as given: httpx would
tidy `..` and `.` segments away before the server ever saw them."""

from __future__ import annotations

import http.client
import os
import string
from urllib.parse import quote, urlsplit

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.serve import API_TOKEN, ServeProcess, Shop, links

EXAMPLES = int(os.environ.get("DRIPPER_FUZZ_EXAMPLES", "60"))
ROUTES = ["o", "c", "u", "a", "r", "api/events", "api/shopify", "api/woocommerce", "healthz",
          "metrics", "inbound", "", "x", "c/x/y"]  # fmt: skip
TOKEN_CHARS = string.ascii_letters + string.digits + "._-~%"
# What a request line can carry (no spaces or control characters), '/' aside.
PATH_CHARS = "".join(c for c in string.printable if c not in string.whitespace and c != "/")
SEGMENTS = ["o", "c", "u", "a", "r", "api", "events", "shopify", "healthz", "metrics",
            "inbound", "..", ".", "", "%2e%2e", "%2F", "%00", "%ff", "%C3%A9", "\\"]  # fmt: skip
QUERIES = ["", "?", "?a=1", "?next=https://evil.test/", "?url=//evil.test", "#frag"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


def send(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent byte for byte: status, headers (lower-case), body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        found: dict[str, str] = {}
        for name, value in response.getheaders():
            found[name.lower()] = value
        return response.status, found, content
    finally:
        conn.close()


def test_no_input_gets_a_5xx_or_an_unsigned_redirect(shop: Shop, server: ServeProcess) -> None:
    """Genuine tokens cut, spliced and mutated, random ones, random paths with dot segments,
    encoded slashes and queries, any method and body, with or without the API's token."""
    genuine_urls = [u for m in shop.emails() for u in links(m, shop.base_url)]
    genuine = [urlsplit(u).path.split("/")[2] for u in genuine_urls]
    allowed: set[str] = set()
    with httpx.Client(base_url=shop.base_url) as client:
        for url in genuine_urls:
            if "/c/" in url or "/r/" in url:
                allowed.add(client.get(url).headers["location"])
    assert allowed, "the shop's emails have links that redirect"

    tokens = st.sampled_from(genuine) | st.text(TOKEN_CHARS, max_size=80)
    mutated = st.tuples(tokens, st.integers(0, 120), st.text(TOKEN_CHARS, max_size=3)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    )
    routed = st.builds(
        lambda route, token, query: (f"/{route}/{quote(token, safe=TOKEN_CHARS)}" if route else "/")
        + query,
        st.sampled_from(ROUTES),
        tokens | mutated,
        st.sampled_from(QUERIES),
    )
    # A genuine link with something around it: a trailing slash, a second segment, a query
    # naming another target, dot segments that walk out of it.
    wrapped = st.builds(
        lambda path, extra: path + extra,
        st.sampled_from([urlsplit(u).path for u in genuine_urls]),
        st.sampled_from(["/", "/x", "/..", "/../../c", "?url=https://evil.test/", "%2F..", "."]),
    )
    anywhere = st.builds(
        lambda parts, query: "/" + "/".join(parts) + query,
        st.lists(st.sampled_from(SEGMENTS) | st.text(PATH_CHARS, max_size=20), max_size=6),
        st.sampled_from(QUERIES) | st.text(PATH_CHARS, max_size=30).map(lambda t: "?" + t),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        path=routed | wrapped | anywhere,
        method=st.sampled_from(METHODS),
        body=st.binary(max_size=300),
        auth=st.booleans(),
        content_type=st.sampled_from(
            ["application/json", "application/x-www-form-urlencoded", "message/rfc822", ""]
        ),
    )
    def check(path: str, method: str, body: bytes, auth: bool, content_type: str) -> None:
        headers = {"content-type": content_type} if content_type else {}
        if auth:
            headers["authorization"] = f"Bearer {API_TOKEN}"
        status, answer, content = send(shop.port, method, path, body, headers)
        assert status < 500, (method, path, status, content[:200])
        if 300 <= status < 400:
            assert answer.get("location") in allowed, (path, answer.get("location"))
        assert "set-cookie" not in answer

    check()

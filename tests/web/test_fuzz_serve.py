"""Arbitrary paths, tokens, methods and bodies against a real `dripper serve`
(hypothesis): never a 5xx, and never a redirect anywhere but to a URL dripper signed (or
the referral landing page)."""

from __future__ import annotations

import os
import string
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.serve import API_TOKEN, ServeProcess, Shop, links

EXAMPLES = int(os.environ.get("DRIPPER_FUZZ_EXAMPLES", "40"))
ROUTES = ["o", "c", "u", "a", "r", "api/events", "api/shopify", "api/woocommerce", "healthz",
          "metrics", "inbound", "", "x", "c/x/y"]  # fmt: skip
TOKEN_CHARS = string.ascii_letters + string.digits + "._-~%"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_input_gets_a_5xx_or_an_unsigned_redirect(shop: Shop, server: ServeProcess) -> None:
    """Genuine tokens cut, spliced and mutated, random ones, any method and body."""
    genuine = [
        urlsplit(u).path.split("/")[2] for m in shop.emails() for u in links(m, shop.base_url)
    ]
    allowed: set[str] = set()
    with httpx.Client(base_url=shop.base_url) as client:
        for message in shop.emails():
            for url in links(message, shop.base_url):
                if "/c/" in url or "/r/" in url:
                    allowed.add(client.get(url).headers["location"])

        tokens = st.sampled_from(genuine) | st.text(TOKEN_CHARS, max_size=80)
        mutated = st.tuples(tokens, st.integers(0, 120), st.text(TOKEN_CHARS, max_size=3)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            route=st.sampled_from(ROUTES),
            token=tokens | mutated,
            method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
            body=st.binary(max_size=300),
            auth=st.booleans(),
            content_type=st.sampled_from(
                ["application/json", "application/x-www-form-urlencoded", "message/rfc822", ""]
            ),
        )
        def check(
            route: str, token: str, method: str, body: bytes, auth: bool, content_type: str
        ) -> None:
            headers = {"content-type": content_type} if content_type else {}
            if auth:
                headers["authorization"] = f"Bearer {API_TOKEN}"
            path = f"/{route}/{quote(token, safe=TOKEN_CHARS)}" if route else "/"
            answer = client.request(method, path, content=body or None, headers=headers)
            assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])
            if 300 <= answer.status_code < 400:
                assert answer.headers["location"] in allowed, (path, answer.headers["location"])
            assert "set-cookie" not in answer.headers

        check()

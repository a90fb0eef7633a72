"""The open pixel and the click redirect, answered in front of the router.

These two routes are nearly every request `dripper serve` gets (a newsletter's opens
arrive by the thousand within minutes), and what a request costs there is mostly the
framework's: the router's patterns, a Request object, the exception layers, a Response
object that builds its headers again every time. Measured with `bench/serve.py`, those
were about a third of the Python each hit cost. So this middleware is where a
good `GET|HEAD /o/<token>` or `/c/<token>` is answered, the only place: the token verified,
the delivery looked up, the hit queued, the GIF or the 302 with headers built once.

Anything else, and any token that does not pass, goes on to the router unchanged, so a
bad token gets exactly the 404 page every other route gives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from dripper.engine.hits import HitKind
from dripper.services.hits import Hit
from dripper.tokens import TokenError, TokenKind

if TYPE_CHECKING:
    from dripper.web.shared import Web

# As `starlette.responses.RedirectResponse` quotes a Location (the routes' own answer).
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"
_NO_STORE = [(b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer")]


class HitRoutes:
    """ASGI middleware: the pixel and the redirect; everything else passes through."""

    def __init__(self, app: ASGIApp, web: Web, gif: bytes) -> None:
        self.app = app
        self.web = web
        self.gif = gif
        self.gif_start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                *_NO_STORE,
                (b"content-length", str(len(gif)).encode()),
                (b"content-type", b"image/gif"),
            ],
        }
        self.gif_body = {"type": "http.response.body", "body": gif}
        self.latency = {
            HitKind.OPEN: web.metrics.latency.labels("open"),
            HitKind.CLICK: web.metrics.latency.labels("click"),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # GET and HEAD both (a GET route of the router answers HEAD too). `serve` never
        # sets a root_path, so the path is the route's path, as the router sees it.
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            route = None
            if path.startswith("/o/"):
                route = (HitKind.OPEN, TokenKind.OPEN)
            elif path.startswith("/c/"):
                route = (HitKind.CLICK, TokenKind.CLICK)
            if route is not None and await self._hit(scope, send, *route, path[3:]):
                return
        await self.app(scope, receive, send)

    async def _hit(
        self, scope: Scope, send: Send, kind: HitKind, token_kind: TokenKind, token: str
    ) -> bool:
        """Answer a genuine pixel or click; False leaves the request to the router. When
        the database does not answer the lookup, the answer still goes out (a click's
        target is in its token) and the writer drops the hit if the delivery is unknown."""
        start = time.perf_counter()
        if not token or "/" in token:  # the router's `{token}` is one path segment
            return False
        web = self.web
        try:
            payload = web.keyring.verify(token, token_kind)
        except TokenError:
            return False
        if await web.directory.exists(payload.delivery_id) is False:
            return False  # unknown or forgotten: the router's 404
        agent = ""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                agent = value.decode("latin-1")
                break
        client = scope.get("client")
        hit = Hit(
            kind,
            payload.delivery_id,
            web.clock(),
            scope["method"],
            agent,
            client[0] if client else None,
            payload.url,
        )
        if not web.writer.put(hit):  # the queue is full: wait for room (`wait_put`)
            await web.writer.wait_put(hit)
        web.counters[kind].inc()
        if kind is HitKind.OPEN:
            await send(self.gif_start)
            await send(self.gif_body)
        else:
            assert payload.url is not None
            location = quote(payload.url, safe=_LOCATION_SAFE).encode("latin-1")
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [*_NO_STORE, (b"content-length", b"0"), (b"location", location)],
                }
            )
            await send({"type": "http.response.body", "body": b""})
        self.latency[kind].observe(time.perf_counter() - start)
        return True

"""What the routes of `dripper serve` share (`Web`: the config, the listening service, the
keys, the hit queue) and how they read a body: its own module, so the app (web/app.py), the
fast hit routes (web/fastpath.py) and the API (web/api.py) use it without importing each
other."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dripper.engine.hits import HitKind
from dripper.store.directory import DeliveryDirectory
from dripper.tokens import Keyring, TokenError, TokenKind, TokenPayload
from dripper.web import pages
from dripper.web.hitproc import HitProcess
from dripper.web.metrics import Metrics
from dripper.web.writer import HitWriter

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.services.listening import Listener
    from dripper.store import Store
    from dripper.store.tracking import Delivery

log = logging.getLogger("dripper.serve")

# What every answer that is not a page says: never cached, never a Referer with a token.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class Web:
    """What the routes share: the config, the listening service, the keys, the queue."""

    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        keyring: Keyring,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from dripper.services.listening import Listener

        self.config = config
        self.store = store
        self.keyring = keyring
        self.listener: Listener = Listener(config, store, campaigns)
        from dripper.services.signups import Desk

        self.desk = Desk(config, store, self.listener.planner)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.company = str(config.company.get("name") or "")
        self.metrics = Metrics()
        self.directory = DeliveryDirectory(config.database_url, self.listener.domain)
        self.counters = {kind: self.metrics.requests.labels(kind.value) for kind in HitKind}
        self.hitproc = HitProcess(
            config.database_url,
            self.listener.domain,
            str(config.tracking.apple_relay_ranges or ""),
        )
        self.writer = HitWriter(
            self.hitproc.write,
            on_written=self._written,
            on_dropped=self.metrics.dropped.inc,
        )

    def _written(self, counts: dict[tuple[str, str], int]) -> None:
        for (kind, cls), n in counts.items():
            self.metrics.classes.labels(kind, cls).inc(n)
            self.metrics.stored.inc(n)

    def verify(self, token: str, kind: TokenKind) -> TokenPayload:
        try:
            return self.keyring.verify(token, kind)
        except TokenError:
            raise HTTPException(404) from None

    async def delivery(self, payload: TokenPayload) -> tuple[Delivery | None, bool]:
        """The delivery, and whether the database answered (False: it did not)."""
        try:
            found = await run_in_threadpool(self.listener.delivery, payload.delivery_id)
        except Exception as exc:  # the database is down: the caller decides
            log.error("cannot look up a delivery: %s", exc)
            return None, False
        return found, True

    def html(self, content: str, status: int = 200, *, csp: str = pages.CSP) -> HTMLResponse:
        """A page with the pages' headers (`csp`: the signup page may run its script)."""
        headers = (
            pages.HEADERS if csp == pages.CSP else {**pages.HEADERS, "Content-Security-Policy": csp}
        )
        return HTMLResponse(content, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes, however it is sent (a client gone
    mid-body: ClientDisconnect, answered by `client_gone`)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"the body is larger than {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the body is larger than {limit:,} bytes")
    return bytes(body)

"""`dripper serve`: the web half (DESIGN 8). Every link in every email lands here.

    GET  /o/<token>          the open pixel (200, a 1x1 GIF, no-store); the hit is queued
    GET  /c/<token>  HEAD    302 to exactly the URL signed into the token; the hit is queued
    GET  /u/<token>          a page with one button; changes nothing
    POST /u/<token>          unsubscribes (RFC 8058 one-click or the page's form), written
                             before the 200; 503 when the database cannot take it
    GET  /a/<token>          a one-click answer: a `feedback` event, then a thank-you page
    GET  /r/<token>          302 to [referrals] landing_url with ?ref=<the customer's code>
    POST /api/events, /api/shopify, /api/woocommerce, /inbound   (dripper.web.api)
    GET  /healthz, /metrics

A forged, truncated, preview-key or unknown token, or one of a forgotten customer, gets
the same 404 page: no redirect, no reason. Nothing in a URL is a database id. No page
sets a cookie, runs a script, or lets its URL leak through a Referer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dripper.customers.model import Status
from dripper.i18n import choose
from dripper.store.outage import describe
from dripper.tokens import Keyring, TokenError, TokenKind
from dripper.web import pages
from dripper.web.fastpath import HitRoutes
from dripper.web.metrics import CONTENT_TYPE_LATEST
from dripper.web.shared import NO_STORE, Web, read_body

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.store import Store

log = logging.getLogger("dripper.serve")

# The smallest transparent GIF: 1x1, one colour, transparent.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
FORM_LIMIT = 4 * 1024  # an unsubscribe POST: `List-Unsubscribe=One-Click` or the form
CONFIG_ENV = "DRIPPER_SERVE_CONFIG"  # how `--workers` processes find the config
NOW_ENV = "DRIPPER_SERVE_NOW"  # and the instant `--now` fixed, if any


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    campaigns: Sequence[Campaign] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The app for `config`: its database, its campaigns (a campaign with problems is left
    out with a warning: an unsubscribe must never depend on a YAML typo) and its secret."""
    from dripper.web import api, signup, tasks

    if store is None:
        from dripper.store import open_store

        store = open_store(config.database_url, consent_default=config.consent.default)
        store.ensure_schema()
    if campaigns is None:
        campaigns = _campaigns(config)
    relays = str(config.tracking.apple_relay_ranges or "")
    if relays:  # read here too, so a bad file stops `serve` at once, in one line
        from dripper.services.hits import load_relay_ranges

        load_relay_ranges(relays)
    web = Web(config, store, campaigns, _keyring(config), clock=clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        web.hitproc.start()  # its imports and connection overlap the server's start
        web.writer.start()
        web.directory.start()
        try:
            yield
        finally:
            await run_in_threadpool(web.writer.stop)  # SIGTERM: every answered hit written
            await run_in_threadpool(web.hitproc.close)
            await web.directory.close()

    def timed(route: str, handler: Callable[[Web, Request], Awaitable[Response]]) -> Any:
        histogram = web.metrics.latency.labels(route)

        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            try:
                return await handler(web, request)
            finally:
                histogram.observe(time.perf_counter() - start)

        return endpoint

    routes = [
        Route("/o/{token}", timed("open", not_a_hit), methods=["GET"]),
        Route("/c/{token}", timed("click", not_a_hit), methods=["GET", "HEAD"]),
        Route("/u/{token}", timed("unsubscribe", unsubscribe), methods=["GET", "POST"]),
        Route("/a/{token}", timed("answer", answer), methods=["GET"]),
        Route("/r/{token}", timed("referral", referral), methods=["GET"]),
        Route("/healthz", timed("healthz", healthz), methods=["GET"]),
        Route("/metrics", timed("metrics", metrics), methods=["GET"]),
        *api.routes(web, timed),
        *signup.routes(web, timed),
        *tasks.routes(web, timed),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if request.url.path.startswith(("/api/", "/inbound")):
            detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
            # A 503 is the database: a shop's webhook or an MTA keeps the request and retries.
            headers = {**NO_STORE, "Retry-After": "60"} if status == 503 else NO_STORE
            return JSONResponse({"error": detail}, status_code=status, headers=headers)
        t = choose(None, request.headers.get("accept-language"), web.config.language)
        if status >= 500:
            return web.html(pages.unavailable(web.company, t), status)
        return web.html(pages.not_found(web.company, t), 404 if status in (404, 405) else status)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # A client gone mid-body (a webhook cut off, a dropped line, serve's request
        # timeout) is no fault of ours: one debug line, never a traceback. No token logged.
        path = request.url.path
        log.debug("client went away mid-body: %s %s", request.method, _route_of(path))
        web.metrics.abandoned.inc()
        return Response(status_code=400)  # sent to nobody

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ClientDisconnect: client_gone,
            HTTPException: http_error,
            Exception: http_error,
        },
        # The pixel and the redirect, answered before the router (dripper.web.fastpath);
        # the routes above still answer every request it passes on.
        middleware=[Middleware(HitRoutes, web=web, gif=GIF)],
    )
    # No redirect of /c/x/ to /c/x: a redirect only ever goes to a URL signed into a token.
    app.router.redirect_slashes = False
    app.state.web = web
    return app


def app_from_environment() -> Starlette:
    """The app factory `--workers` processes call: the config path is in CONFIG_ENV."""
    from dripper.config import load_config

    path = os.environ.get(CONFIG_ENV)
    fixed = os.environ.get(NOW_ENV)
    clock = None
    if fixed:
        instant = datetime.fromisoformat(fixed)

        def clock() -> datetime:
            return instant

    return create_app(load_config(Path(path) if path else None), clock=clock)


# --- the routes ------------------------------------------------------------------------------


async def not_a_hit(web: Web, request: Request) -> Response:
    """`/o/` and `/c/` reach the router only when `dripper.web.fastpath` found the token
    bad or its delivery unknown (a genuine pixel or click is answered there)."""
    raise HTTPException(404)


async def unsubscribe(web: Web, request: Request) -> Response:
    """The preference page (DESIGN 13). GET shows it and changes nothing; the RFC 8058
    one-click POST and the page's "stop all email" unsubscribe from everything; the page's
    "save" keeps the topics ticked. Written before the 200, else 503."""
    payload = web.verify(request.path_params["token"], TokenKind.UNSUBSCRIBE)
    delivery, answered = await web.delivery(payload)
    if not answered:
        return _unavailable(web)
    if delivery is None:
        raise HTTPException(404)
    try:
        customer = await run_in_threadpool(web.store.get_customer, delivery.email)
    except Exception:
        return _unavailable(web)
    t = choose(
        customer.locale if customer else None,
        request.headers.get("accept-language"),
        web.config.language,
    )
    gone = customer is None or customer.status is Status.UNSUBSCRIBED
    if request.method != "POST":  # GET, and the HEAD starlette adds: they change nothing
        if gone:
            return web.html(pages.unsubscribed(web.company, delivery.email, t))
        if web.config.topics and customer is not None:
            kept = [
                (name, label, customer.wants(name)) for name, label in web.config.topics.items()
            ]
            return web.html(pages.preferences(web.company, delivery.email, kept, t))
        return web.html(pages.unsubscribe_form(web.company, delivery.email, t))
    body = await read_body(request, FORM_LIMIT)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if b"List-Unsubscribe=One-Click" not in body and form.get("action") == ["save"]:
        if gone:
            return web.html(pages.unsubscribed(web.company, delivery.email, t))
        try:
            await run_in_threadpool(
                lambda: web.desk.choose_topics(
                    delivery.email,
                    form.get("topics", []),
                    now=web.clock(),
                    ip=request.client.host if request.client else None,
                    user_agent=request.headers.get("user-agent"),
                )
            )
        except Exception as exc:  # never claim what was not stored
            log.error("topics not stored: %s", describe(exc))
            return _unavailable(web)
        web.metrics.requests.labels("preferences").inc()
        return web.html(pages.saved(web.company, t))
    how = "one-click" if b"List-Unsubscribe=One-Click" in body else "page"
    try:
        changed = await run_in_threadpool(
            web.listener.unsubscribe, delivery, now=web.clock(), how=how
        )
    except Exception as exc:  # never claim what was not stored: the sender retries
        log.error("unsubscribe not stored: %s", describe(exc))
        return _unavailable(web)
    web.metrics.requests.labels("unsubscribe").inc()
    web.metrics.classes.labels("unsubscribe", "new" if changed else "again").inc()
    return web.html(pages.unsubscribed(web.company, delivery.email, t))


async def answer(web: Web, request: Request) -> Response:
    payload = web.verify(request.path_params["token"], TokenKind.ANSWER)
    assert payload.question is not None
    assert payload.answer is not None
    delivery, answered = await web.delivery(payload)
    if not answered:
        return _unavailable(web)
    if delivery is None:
        raise HTTPException(404)
    try:
        recorded = await run_in_threadpool(
            lambda: web.listener.answer(
                delivery,
                payload.question or "",
                payload.answer or "",
                now=web.clock(),
                method=request.method,
                user_agent=request.headers.get("user-agent", ""),
                ip=request.client.host if request.client else None,
            )
        )
    except Exception as exc:
        log.error("answer not stored: %s", describe(exc))
        return _unavailable(web)
    web.metrics.requests.labels("answer").inc()
    web.metrics.classes.labels("answer", "recorded" if recorded else "not recorded").inc()
    try:  # the thank-you in the customer's language (their locale, else the browser's)
        customer = await run_in_threadpool(web.store.get_customer, delivery.email)
    except Exception:
        customer = None  # the answer is stored: a page in the browser's language will do
    locale = customer.locale if customer is not None else None
    t = choose(locale, request.headers.get("accept-language"), web.config.language)
    return web.html(pages.thanks(web.company, t))


async def referral(web: Web, request: Request) -> Response:
    payload = web.verify(request.path_params["token"], TokenKind.REFERRAL)
    landing = str(web.config.referrals.landing_url or web.config.company.get("url") or "")
    if not landing.startswith(("http://", "https://")):
        raise HTTPException(404)
    code = payload.delivery_id
    try:
        referrer = await run_in_threadpool(web.listener.referrer, code, now=web.clock())
    except Exception as exc:  # the code is in the URL: the referral still works
        log.error("referral visit not stored: %s", describe(exc))
    else:
        if referrer is None:  # a forgotten customer's link
            raise HTTPException(404)
    web.metrics.requests.labels("referral").inc()
    return RedirectResponse(_with_ref(landing, code), status_code=302, headers=NO_STORE)


async def healthz(web: Web, request: Request) -> Response:
    try:
        await run_in_threadpool(_ping, web)
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def metrics(web: Web, request: Request) -> Response:
    web.metrics.queue.set(web.writer.depth())
    web.metrics.lookups_now(web.directory.from_memory, web.directory.from_database)
    return Response(web.metrics.render(), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


# --- helpers -----------------------------------------------------------------------------------


def _unavailable(web: Web) -> Response:
    response = web.html(pages.unavailable(web.company), 503)
    response.headers["Retry-After"] = "60"
    return response


def _ping(web: Web) -> None:
    web.store.ping()


def _with_ref(url: str, code: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ref"]
    query.append(("ref", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _route_of(path: str) -> str:
    """The route of a path, without the token it may carry."""
    return path if path.startswith(("/api/", "/inbound")) else path[:3]


def _campaigns(config: Config) -> list[Campaign]:
    from dripper.campaigns import load_campaigns

    campaigns, problems = load_campaigns(config.campaigns_dir, config.templates_dir)
    for problem in problems:
        log.warning("campaign left out of serve: %s", problem)
    return campaigns


def _keyring(config: Config) -> Keyring:
    from dripper.errors import ConfigError

    env_name = str(config.tracking.secret_env)
    secret = config.secret(env_name)
    if not secret:
        raise ConfigError(
            f"the environment variable {env_name} is not set: `dripper serve` checks the links "
            "of sent emails with the secret that signed them; set it as for `dripper run`"
        )
    try:
        return Keyring.from_secret(secret)
    except TokenError as exc:
        raise ConfigError(f"{env_name}: {exc}") from None

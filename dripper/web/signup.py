"""The signup routes of `dripper serve` (DESIGN 13), answered only with `[signup] enabled`:

    GET  /subscribe            the shop's own plain signup page
    POST /subscribe            form-encoded (a plain <form> anywhere) or JSON: a pending
                               signup; the same answer whatever the address's state
    GET  /subscribe/challenge  a proof-of-work challenge (JSON, any origin may fetch it)
    GET  /subscribe/pow.js     the script that solves it before a form posts
    GET  /s/<token>            the confirm page: one button, changes nothing
    POST /s/<token>            confirms (410 expired, 404 unknown or forged)

Only a per-IP limit answers differently (429). A field that is wrong gets a 400 page or
JSON error naming it, and nothing is stored; the database down gets 503 and Retry-After,
never a 200 for what was not stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dripper.engine.signup import BODY_LIMIT, SignupInvalid
from dripper.i18n import Words, choose, from_accept_language
from dripper.services.signups import Answer, ConfirmOutcome, Desk
from dripper.store.outage import describe
from dripper.tokens import TokenKind
from dripper.web import pages
from dripper.web.pow import ProofOfWork
from dripper.web.shared import NO_STORE, Web, read_body

log = logging.getLogger("dripper.serve")

_NEEDS_POW = "Please let the page finish its check (it needs JavaScript), then send the form again."
_SCRIPT = resources.files("dripper.web").joinpath("static/pow.js").read_bytes()


def routes(web: Web, timed: Callable[..., Any]) -> list[Route]:
    state = _State(web.desk, ProofOfWork(web.keyring.signing.secret))

    def bind(handler: Callable[..., Any]) -> Callable[[Web, Request], Any]:
        async def endpoint(web: Web, request: Request) -> Response:
            if not web.config.signup.enabled:
                raise HTTPException(404)
            return await handler(web, state, request)  # type: ignore[no-any-return]

        return endpoint

    return [
        Route("/subscribe", timed("subscribe", bind(subscribe)), methods=["GET", "POST"]),
        Route("/subscribe/challenge", timed("challenge", bind(challenge)), methods=["GET"]),
        Route("/subscribe/pow.js", timed("challenge", bind(script)), methods=["GET"]),
        Route("/s/{token}", timed("confirm", bind(confirm)), methods=["GET", "POST"]),
    ]


class _State:
    def __init__(self, desk: Desk, pow_: ProofOfWork) -> None:
        self.desk = desk
        self.pow = pow_


def _words(web: Web, request: Request, locale: str | None = None) -> Words:
    return choose(locale, request.headers.get("accept-language"), web.config.language)


async def subscribe(web: Web, state: _State, request: Request) -> Response:
    t = _words(web, request)
    settings = web.config.signup
    if request.method != "POST":  # GET, and the HEAD starlette adds
        form_id = request.query_params.get("form", "default")
        form = settings.form(form_id)
        if form is None:
            raise HTTPException(404)
        offered = form.topics if form.topics is not None else tuple(web.config.topics)
        content = pages.signup_form(
            web.company,
            form_id=form_id,
            consent_text=form.consent_text,
            topics=[(name, web.config.topics[name]) for name in offered],
            honeypot=settings.honeypot,
            challenge_url="/subscribe/challenge" if settings.proof_of_work else "",
            t=t,
        )
        csp = pages.SIGNUP_CSP
        if settings.redirect_url:  # the form's POST answers 303 there: Chrome checks it too
            parts = urlsplit(settings.redirect_url)
            csp = csp.replace(
                "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
            )
        return web.html(content, csp=csp)
    as_json = request.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    try:
        body = await read_body(request, BODY_LIMIT)
    except HTTPException:
        return _refuse(web, t, as_json, "body", t("The form is too large."), 413)
    try:
        values = _values(body, as_json)
    except ValueError:
        return _refuse(web, t, as_json, "body", t("The form could not be read."), 400)
    if settings.proof_of_work and not state.pow.verify(str(values.get("altcha") or "")):
        return _refuse(
            web,
            t,
            as_json,
            "altcha",
            t(_NEEDS_POW),
            400,
        )
    ip = request.client.host if request.client else None
    try:
        answer = await run_in_threadpool(
            state.desk.subscribe,
            values,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            # the browser's language, if it said one we speak: the confirmation email and
            # the customer's locale follow it; else [company] language, and no locale kept
            locale=from_accept_language(request.headers.get("accept-language")),
            now=web.clock(),
        )
    except SignupInvalid as exc:  # JSON names the field in English; a page, in theirs
        message = str(exc) if as_json else _field_message(t, exc)
        return _refuse(web, t, as_json, exc.field, message, 400)
    except Exception as exc:  # the database: nothing is claimed that was not stored
        log.error("signup not stored: %s", describe(exc))
        if as_json:
            return JSONResponse(
                {"error": "not stored, try again"},
                status_code=503,
                headers={**NO_STORE, "Retry-After": "60"},
            )
        response = web.html(pages.unavailable(web.company, t), 503)
        response.headers["Retry-After"] = "60"
        return response
    web.metrics.requests.labels("subscribe").inc()
    web.metrics.classes.labels("subscribe", answer.value).inc()
    if answer is Answer.TOO_MANY:
        retry = {"Retry-After": str(int(settings.per_ip.period.total_seconds()))}
        if as_json:
            return JSONResponse(
                {"error": "too many signups from this address, try again later"},
                status_code=429,
                headers={**NO_STORE, **retry},
            )
        response = web.html(pages.too_many(web.company, t), 429)
        response.headers.update(retry)
        return response
    if as_json:
        return JSONResponse({"status": "pending"}, headers=NO_STORE)
    if settings.redirect_url:
        return RedirectResponse(settings.redirect_url, status_code=303, headers=NO_STORE)
    return web.html(pages.check_inbox(web.company, t))


async def challenge(web: Web, state: _State, request: Request) -> Response:
    if not web.config.signup.proof_of_work:
        raise HTTPException(404)
    # Any origin: a shop's own page fetches it (no cookie is ever read or set).
    headers = {**NO_STORE, "Access-Control-Allow-Origin": "*"}
    return JSONResponse(state.pow.challenge(), headers=headers)


async def script(web: Web, state: _State, request: Request) -> Response:
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(_SCRIPT, media_type="text/javascript", headers=headers)


async def confirm(web: Web, state: _State, request: Request) -> Response:
    payload = web.verify(request.path_params["token"], TokenKind.SIGNUP)
    key = payload.delivery_id
    t = _words(web, request)
    now = web.clock()
    try:
        if request.method != "POST":  # GET and HEAD change nothing
            found = await run_in_threadpool(state.desk.pending, key, now=now)
            if found is None:
                raise HTTPException(404)
            t = _words(web, request, found.locale)
            if found.outcome is ConfirmOutcome.EXPIRED:
                return web.html(pages.expired(web.company, t), 410)
            if found.outcome is ConfirmOutcome.AGAIN:
                return web.html(pages.confirmed(web.company, t))
            return web.html(pages.confirm_form(web.company, found.email, t))
        await read_body(request, 4096)
        outcome, shown = await run_in_threadpool(
            lambda: state.desk.confirm(
                key,
                now=now,
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
        )
    except HTTPException:
        raise
    except Exception as exc:
        log.error("confirmation not stored: %s", describe(exc))
        response = web.html(pages.unavailable(web.company, t), 503)
        response.headers["Retry-After"] = "60"
        return response
    if outcome is ConfirmOutcome.UNKNOWN:
        raise HTTPException(404)
    if shown is not None:
        t = _words(web, request, shown.locale)
    if outcome is ConfirmOutcome.EXPIRED:
        return web.html(pages.expired(web.company, t), 410)
    web.metrics.requests.labels("confirm").inc()
    web.metrics.classes.labels("confirm", outcome.value).inc()
    return web.html(pages.confirmed(web.company, t))


def _values(body: bytes, as_json: bool) -> dict[str, object]:
    if as_json:
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    return {name: (items if name == "topics" else items[0]) for name, items in parsed.items()}


def _field_message(t: Words, exc: SignupInvalid) -> str:
    if exc.field == "email":
        return t("Please enter a valid email address.")
    if exc.field == "first_name":
        return t("Please enter your first name as one line of plain text.")
    if exc.field in ("topics", "form"):
        return t("This form is out of date: please reload the page and try again.")
    return t("The form could not be read.")


def _refuse(web: Web, t: Words, as_json: bool, field: str, message: str, status: int) -> Response:
    if as_json:
        return JSONResponse(
            {"error": message, "field": field}, status_code=status, headers=NO_STORE
        )
    return web.html(pages.signup_refused(web.company, message, t), status)

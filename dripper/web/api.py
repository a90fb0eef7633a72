"""The events API of `dripper serve`, and the shop webhooks that feed it.

    POST /api/events       Authorization: Bearer <the secret named by [api] token_env>
                           {"type": ..., "email": ..., "at": ..., "id": ..., "data": {...},
                            "customer": {...}} or {"events": [ ... up to 1,000 ... ]}
    POST /api/shopify      orders/create, refunds/create; X-Shopify-Hmac-Sha256 checked
                           ([api] shopify_secret_env)
    POST /api/woocommerce  order.created, order.updated (refunds); X-WC-Webhook-Signature
                           checked ([api] woocommerce_secret_env)

All or nothing per request: every event is checked first, then all are recorded in one
transaction with the same decisions as `dripper event`. Answers `200 {"recorded": N,
"duplicates": M}` (an event whose type and id were recorded before is a duplicate and
changes nothing; `"warnings"` lists what was worth saying), or `400` (not JSON), `401` (no
or a wrong secret), `413` (over 1 MiB or 1,000 events), `422` (an event that cannot be
recorded, named by its index and field), `503` (the database) with `{"error": "..."}`;
after any of those nothing of the request was recorded.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dripper.errors import InputError
from dripper.services.inbound import temporary
from dripper.web import shops
from dripper.web.shared import NO_STORE

if TYPE_CHECKING:
    from dripper.customers.model import CustomerData
    from dripper.web.shared import Web

KEYS = ("type", "email", "at", "id", "data", "customer")
API_LIMIT = 1 << 20  # bytes per request
MAX_EVENTS = 1_000
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # as `dripper event TYPE`
IGNORED: dict[str, Any] = {"recorded": 0, "duplicates": 0}


@dataclass(frozen=True)
class ApiEvent:
    type: str
    email: str | None  # None: a shop's refund that names only its order (`order_event`)
    at: datetime
    data: dict[str, Any]
    ext_id: str | None = None
    fields: CustomerData | None = None
    order_event: str | None = None  # the purchase's id, whose customer this event is


@dataclass
class Outcome:
    recorded: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)


def routes(web: Web, timed: Callable[..., Any]) -> list[Route]:
    return [
        Route("/api/events", timed("api_events", events), methods=["POST"]),
        Route("/api/shopify", timed("api_shopify", shopify), methods=["POST"]),
        Route("/api/woocommerce", timed("api_woocommerce", woocommerce), methods=["POST"]),
        Route("/inbound", timed("inbound", inbound), methods=["POST"]),
    ]


async def events(web: Web, request: Request) -> Response:
    _authorize(web, request)
    body = await _body(request)
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not JSON: {_short(exc)}") from None
    if isinstance(document, dict) and "events" in document:
        items = document["events"]
        if not isinstance(items, list):
            raise HTTPException(422, "events: expected a list of events")
    elif isinstance(document, dict):
        items = [document]
    else:
        raise HTTPException(422, 'expected an event object, or {"events": [...]}')
    if len(items) > MAX_EVENTS:
        raise HTTPException(413, f"{len(items):,} events: at most {MAX_EVENTS:,} per request")
    return await _record(web, [_event(web, i, item) for i, item in enumerate(items)])


def _shop_events(web: Web, items: list[dict[str, Any]]) -> list[ApiEvent]:
    """A shop adapter's events, checked as the API's are; only they may name their
    customer by the purchase (`order_event`: a refund that carries no address)."""
    return [_event(web, i, item, from_shop=True) for i, item in enumerate(items)]


async def shopify(web: Web, request: Request) -> Response:
    secret = _shop_secret(web, "shopify_secret_env")
    body = await _body(request)
    if not shops.signature_ok(body, request.headers.get("x-shopify-hmac-sha256"), secret):
        raise HTTPException(401, "X-Shopify-Hmac-Sha256 does not match the body")
    topic = request.headers.get("x-shopify-topic", "orders/create")
    items = shops.shopify_events(topic, _json_object(body))
    if items is None:
        return JSONResponse(IGNORED | {"ignored": topic}, headers=NO_STORE)
    return await _record(web, _shop_events(web, items))


async def woocommerce(web: Web, request: Request) -> Response:
    secret = _shop_secret(web, "woocommerce_secret_env")
    body = await _body(request)
    if body.startswith(b"webhook_id="):  # the ping WooCommerce sends when a hook is saved
        return JSONResponse(IGNORED, headers=NO_STORE)
    if not shops.signature_ok(body, request.headers.get("x-wc-webhook-signature"), secret):
        raise HTTPException(401, "X-WC-Webhook-Signature does not match the body")
    topic = request.headers.get("x-wc-webhook-topic", "order.created")
    items = shops.woocommerce_events(topic, _json_object(body))
    if items is None:
        return JSONResponse(IGNORED | {"ignored": topic}, headers=NO_STORE)
    return await _record(web, _shop_events(web, items))


async def inbound(web: Web, request: Request) -> Response:
    """One raw message (`message/rfc822`), as an inbound-mail webhook posts it: classified,
    recorded once, acted on; 200 `{"class": ..., "new": ...}`."""
    from dripper.services.inbound import MAX_MESSAGE_BYTES

    _authorize(web, request)
    from dripper.web.shared import read_body

    raw = await read_body(request, MAX_MESSAGE_BYTES)
    if not raw.strip():
        raise HTTPException(400, "the body is empty: post the raw message")
    try:
        taken = await run_in_threadpool(
            web.listener.take_in, raw, via="http", now=web.clock()
        )
    except Exception as exc:  # the database: the sender keeps the message and retries
        if not temporary(exc):
            raise  # a bug: a 500, not a 503 the sender would retry forever
        raise HTTPException(503, f"not recorded, try again: {type(exc).__name__}") from None
    web.metrics.inbound.labels(taken.kind.value).inc()
    return JSONResponse(
        {"class": taken.kind.value, "new": taken.new, "reason": taken.reason}, headers=NO_STORE
    )


# --- checking, then recording all at once -------------------------------------------------------


def _event(web: Web, index: int, item: Any, *, from_shop: bool = False) -> ApiEvent:
    """One event checked as `dripper event` checks it; 422 naming the index otherwise."""
    from dripper.customers.addresses import normalize_email
    from dripper.customers.fields import customer_fields
    from dripper.eventdata import check_event_id
    from dripper.timeparse import parse_instant

    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise HTTPException(422, f"{where}: expected an object with type and email")
    unknown = sorted(set(item) - {*KEYS, *(("order_event",) if from_shop else ())})
    if unknown:
        raise HTTPException(
            422, f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})"
        )
    kind, email, at, data = item.get("type"), item.get("email"), item.get("at"), item.get("data")
    if not isinstance(kind, str) or not EVENT_TYPE.fullmatch(kind):
        raise HTTPException(
            422, f"{where}.type: expected an event type like 'purchase' (lower-case letters)"
        )
    order_event = item.get("order_event")  # only the shop adapters give it
    address: str | None = None
    if email is None and isinstance(order_event, str):
        pass
    elif not isinstance(email, str):
        raise HTTPException(422, f"{where}.email: expected an address")
    else:
        try:
            address = normalize_email(email)
        except ValueError as exc:
            raise HTTPException(422, f"{where}.email: {exc}") from None
    if at is None:
        moment = web.clock()
    elif isinstance(at, str):
        try:
            moment = parse_instant(at)
        except ValueError as exc:
            raise HTTPException(422, f"{where}.at: {exc}") from None
    else:
        raise HTTPException(422, f"{where}.at: expected an ISO 8601 time")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HTTPException(422, f"{where}.data: expected an object")
    ext_id = item.get("id")
    if isinstance(ext_id, int) and not isinstance(ext_id, bool):
        ext_id = str(ext_id)  # a shop's numeric order id is the same id as text
    try:
        if ext_id is not None:
            ext_id = check_event_id(ext_id, where=f"{where}.id")
        web.listener.planner.check(moment, data, where=f"{where}.data", type_=kind)
        fields = (
            customer_fields(
                address or "", item["customer"], where=f"{where}.customer", hints=from_shop
            )
            if item.get("customer") is not None
            else None
        )
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    order = order_event if isinstance(order_event, str) and address is None else None
    return ApiEvent(kind, address, moment, data, ext_id, fields, order)


async def _record(web: Web, items: Sequence[ApiEvent]) -> Response:
    if not items:
        return JSONResponse({"recorded": 0, "duplicates": 0}, headers=NO_STORE)
    try:
        outcome = await run_in_threadpool(_record_all, web, items)
    except InputError as exc:  # a value the checks let through and recording refused
        raise HTTPException(422, str(exc)) from None
    except Exception as exc:  # the database: nothing of the request was recorded
        if not temporary(exc):
            raise  # a bug: a 500, not a 503 a shop would retry forever
        raise HTTPException(503, f"not recorded, try again: {type(exc).__name__}") from None
    web.metrics.requests.labels("event").inc(outcome.recorded)
    answer: dict[str, Any] = {"recorded": outcome.recorded, "duplicates": outcome.duplicates}
    if outcome.warnings:
        answer["warnings"] = outcome.warnings
    return JSONResponse(answer, headers=NO_STORE)


def _record_all(web: Web, items: Sequence[ApiEvent]) -> Outcome:
    """Every event of the request in one transaction: all of them, or none. A duplicate
    (its type and id recorded before, by an earlier request or earlier in this one) is
    counted and changes nothing."""
    from dripper.store import sheet

    now = web.clock()
    planner = web.listener.planner
    outcome = Outcome()
    with web.store.transaction() as conn:
        for index, item in enumerate(items):
            email = item.email
            if email is None and item.order_event is not None:
                email = sheet.buyer_of(conn, item.order_event)
                if email is None:  # a refund of an order never recorded here
                    outcome.warnings.append(
                        f"events[{index}]: {item.type} of order {item.order_event!r}: no "
                        "such purchase was recorded, nothing to change"
                    )
                    continue
            assert email is not None
            fields = item.fields
            if fields is not None and fields.email != email:
                fields = replace(fields, email=email)
            try:
                recorded = planner.record_in(
                    conn,
                    email,
                    item.type,
                    at=item.at,
                    data=item.data,
                    now=now,
                    ext_id=item.ext_id,
                    fields=fields,
                )
            except InputError as exc:
                raise InputError(f"events[{index}]: {exc}") from None
            if recorded is None:
                outcome.duplicates += 1
            else:
                outcome.recorded += 1
                outcome.warnings += [
                    f"events[{index}]: {w}" for w in recorded.decisions.warnings
                ]
    return outcome


# --- helpers ----------------------------------------------------------------------------------


def _authorize(web: Web, request: Request) -> None:
    env_name = web.config.api.token_env
    secret = web.config.secret(env_name) or ""
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if not secret:
        raise HTTPException(401, f"the events API is off: set {env_name} to a long secret")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), secret.encode()
    ):
        raise HTTPException(401, "missing or wrong bearer token")


def _shop_secret(web: Web, key: str) -> str:
    env_name = str(getattr(web.config.api, key))  # shopify_secret_env, woocommerce_...
    secret = web.config.secret(env_name) if env_name else None
    if not secret:
        raise HTTPException(404)  # that shop is not connected
    return secret


async def _body(request: Request) -> bytes:
    from dripper.web.shared import read_body

    return await read_body(request, API_LIMIT)


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not JSON: {_short(exc)}") from None
    if not isinstance(document, dict):
        raise HTTPException(422, "expected an order object")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__

"""The steps that are not emails (DESIGN 16), once the send-time checks let them through:
a task step becomes a task for a person (stored with its outcome in one transaction, so a
claim taken again after a crash makes no second task), a webhook step a signed POST whose
attempt is written before it goes and whose answer the delivery policy judges like an SMTP
reply. `Sender._deliver` hands them here; nothing here is an email.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine.model import SendStatus
from dripper.engine.timing import zone

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Step
    from dripper.customers.model import Customer
    from dripper.engine.model import EventFacts
    from dripper.render.renderer import Renderer
    from dripper.services.sending import Sender
    from dripper.store.deliveries import DueSend, SendResult
    from dripper.store.tasks import NewTask
    from dripper.transport.webhook import WebhookClient

log = logging.getLogger("dripper.run")
POSTS_AT_ONCE = 4  # webhook requests in flight together


async def handle(
    sender: Sender,
    renderer: Renderer,
    items: Sequence[tuple[DueSend, Campaign, Step]],
    now: datetime,
    *,
    webhooks: WebhookClient | None,
    dry: bool = False,
) -> list[SendResult]:
    """Make the tasks and POST the webhooks of `items`; their outcomes, recorded unless
    `dry` (a dry run renders, makes nothing and posts nothing)."""
    results = _tasks(sender, renderer, [i for i in items if i[2].kind == "task"], now, dry=dry)
    hooks = [i for i in items if i[2].kind == "webhook"]
    if hooks:
        results += await _webhooks(sender, renderer, hooks, now, webhooks, dry=dry)
    return results


def _tasks(
    sender: Sender,
    renderer: Renderer,
    items: Sequence[tuple[DueSend, Campaign, Step]],
    now: datetime,
    *,
    dry: bool,
) -> list[SendResult]:
    from dripper.campaigns.personal_steps import DEFAULT_DUE
    from dripper.errors import DripperError
    from dripper.store import deliveries, tasks
    from dripper.store.deliveries import SendResult
    from dripper.store.tasks import NewTask

    people = sender.config.tasks
    results: list[SendResult] = []
    new: list[NewTask] = []
    for send, campaign, step in items:
        person = people.person(step.assignee)
        if person is None:
            who = step.assignee or "anyone"
            results.append(
                SendResult(send.id, SendStatus.FAILED, f"no {who} in [tasks] people of config.toml")
            )
            continue
        try:
            text = renderer.text_of(
                campaign, step, send.customer, step.task or "", now=now, event=send.event
            )
        except DripperError as exc:
            results.append(SendResult(send.id, SendStatus.FAILED, f"render: {exc}"))
            continue
        tz = zone(send.customer.timezone, sender.config.timezone)
        due = (step.due or DEFAULT_DUE).add(now, tz)
        new.append(
            NewTask(send.id, send.customer.id, campaign.name, step.id, person.key, text, due)
        )
        results.append(SendResult(send.id, SendStatus.SENT, f"task for {person.key}"))
    if dry:
        return [_dry(r, "dry run: task not made") for r in results]
    with sender.store.transaction() as conn:
        tasks.create(conn, new, now=now)
        deliveries.record_results(conn, results, now=now)
    return results


async def _webhooks(
    sender: Sender,
    renderer: Renderer,
    items: Sequence[tuple[DueSend, Campaign, Step]],
    now: datetime,
    client: WebhookClient | None,
    *,
    dry: bool,
) -> list[SendResult]:
    from dripper.errors import DripperError
    from dripper.services.sending import result_of
    from dripper.store import deliveries
    from dripper.store.deliveries import SendResult
    from dripper.tokens import delivery_id

    results: dict[int, SendResult] = {}
    ready: list[tuple[DueSend, Step, bytes]] = []
    for send, campaign, step in items:
        assert step.webhook is not None
        try:
            body = webhook_body(renderer, campaign, step, send.customer, now=now, event=send.event)
        except DripperError as exc:
            results[send.id] = SendResult(send.id, SendStatus.FAILED, f"render: {exc}")
            continue
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        ready.append((send, step, data.encode("utf-8")))
    if dry or client is None:
        done = [
            _dry(results.get(s.id) or SendResult(s.id, SendStatus.SENT), "dry run: not posted")
            for s, _, _ in ready
        ]
        return [*results.values(), *done]
    # The attempts are written before anything is posted: a daemon killed mid-request
    # leaves an ambiguous webhook (posted again with the same X-Dripper-Delivery), never a
    # lost one.
    with sender.store.transaction() as conn:
        attempts = deliveries.open_attempts(conn, [s.id for s, _, _ in ready], now=now)
    at_once = asyncio.Semaphore(POSTS_AT_ONCE)

    async def one(send: DueSend, step: Step, data: bytes) -> SendResult:
        assert step.webhook is not None
        async with at_once:
            outcome = await client.post(
                step.webhook.url, data, delivery=delivery_id(send.message_id), step=step.id
            )
        return result_of(sender, send, outcome, now)

    posted = await asyncio.gather(*(one(s, st, d) for s, st, d in ready))
    every = [*results.values(), *posted]
    with sender.store.transaction() as conn:
        deliveries.record_results(conn, every, now=now, attempts=attempts)
    return every


def webhook_body(
    renderer: Renderer,
    campaign: Campaign,
    step: Step,
    customer: Customer,
    *,
    now: datetime,
    event: EventFacts | None,
) -> Any:
    """A webhook step's body for `customer`, as JSON will carry it: every string rendered,
    the rest as written (what is POSTed, and what `preview` shows)."""
    from dripper.campaigns.personal_steps import body_shape

    def rendered(value: Any) -> Any:
        if isinstance(value, str):
            return renderer.text_of(
                campaign, step, customer, value, now=now, event=event, what="webhook body"
            )
        if isinstance(value, dict):
            return {k: rendered(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rendered(v) for v in value]
        return value

    assert step.webhook is not None
    return body_shape(rendered(step.webhook.body))


def _dry(result: SendResult, reason: str) -> SendResult:
    from dataclasses import replace

    return replace(result, reason=reason) if result.status is SendStatus.SENT else result

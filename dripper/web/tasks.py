"""The one-click "done" link of a person's morning digest (DESIGN 16):

    GET  /t/<token>   the task and a button (with an optional note): changes nothing, so a
                      mail scanner that follows every link closes no task
    POST /t/<token>   marks it done (the note goes on the customer's sheet); a task closed
                      before gets the same "closed" page and changes nothing

A forged or unknown token is 404; the database down is 503 with Retry-After, never a
"done" page for what was not stored. The page is in the person's language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dripper.errors import InputError
from dripper.i18n import Words, choose
from dripper.store.outage import describe
from dripper.tokens import TokenKind
from dripper.web import pages
from dripper.web.shared import Web, read_body

log = logging.getLogger("dripper.serve")
MAX_NOTE = 2000


def routes(web: Web, timed: Callable[..., Any]) -> list[Route]:
    return [Route("/t/{token}", timed("task", task), methods=["GET", "POST"])]


def _words(web: Web, assignee: str) -> Words:
    person = web.config.tasks.person(assignee)
    return choose(person.language if person else None, None, web.config.language)


async def task(web: Web, request: Request) -> Response:
    from dripper.store import tasks

    key = web.verify(request.path_params["token"], TokenKind.TASK).delivery_id
    t = choose(None, request.headers.get("accept-language"), web.config.language)

    def look() -> tasks.TaskRecord | None:
        with web.store.reading() as conn:
            return tasks.by_link(conn, key)

    try:
        found = await run_in_threadpool(look)
        if found is None:
            raise HTTPException(404)
        t = _words(web, found.assignee)
        if found.status != tasks.OPEN:  # closed before: say so, change nothing
            return web.html(pages.task_closed(web.company, "closed", t))
        if request.method != "POST":  # GET and HEAD change nothing (scanners)
            about = found.who
            if found.unsubscribed:
                about += f" ({t('unsubscribed from email')})"
            due = f"{found.due_at:%Y-%m-%d %H:%M} UTC"
            return web.html(pages.task_form(web.company, found.text, about, due, t))
        body = await read_body(request, 16_384)
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        note = " ".join((fields.get("note") or [""])[0].split())[:MAX_NOTE] or None
        now = web.clock()

        def close() -> str:
            with web.store.transaction() as conn:
                try:
                    done = tasks.close(
                        conn, found.id, status=tasks.DONE, now=now, by="link", note=note
                    )
                except InputError:  # closed a moment ago: say so, change nothing
                    return "closed"
            return done.status

        status = await run_in_threadpool(close)
    except HTTPException:
        raise
    except Exception as exc:
        log.error("task not closed: %s", describe(exc))
        response = web.html(pages.unavailable(web.company, t), 503)
        response.headers["Retry-After"] = "60"
        return response
    return web.html(pages.task_closed(web.company, status, t))

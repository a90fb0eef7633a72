"""`dripper preview --serve`: a local page with every campaign and step, each email at
desktop and mobile width, its subject and text version beside it, a sample-customer
selector, reloading when a campaign, template, sample or config file changes; and `/stats`,
the numbers of `dripper stats` as pictures (the marketer's local server, never the public
`dripper serve`).

Emails are shown in `<iframe sandbox>` (no `allow-scripts`) and their raw route also sends
`Content-Security-Policy: sandbox; script-src 'none'`: no script from a template ever runs.
Only the preview page itself runs a few lines of script (to reload on change).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dripper.errors import DripperError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from dripper.config import Config
    from dripper.preview.build import Project
    from dripper.store import Store

EMAIL_CSP = "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline' *; font-src *"
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "frame-src 'self'; img-src * data:"
)

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #f4f2ef; }
header { padding: 12px 20px; background: #2d2a26; color: #fff; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 16px 20px; }
.frames { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
.frames figure { margin: 0; }
iframe { border: 1px solid #ccc; background: #fff; height: 900px; }
iframe.desktop { width: 700px; } iframe.mobile { width: 375px; }
pre { white-space: pre-wrap; background: #fff; border: 1px solid #ccc; padding: 12px;
      max-width: 640px; font-size: 13px; }
.meta td { padding: 2px 12px 2px 0; vertical-align: top; }
.error { background: #fde8e8; border: 1px solid #e0a0a0; padding: 10px; white-space: pre-wrap; }
li { margin: 2px 0; }
"""

RELOAD = """
<script>
(function () {
  var seen = null;
  async function poll() {
    try {
      var r = await fetch('/_changes');
      var v = (await r.json()).version;
      if (seen !== null && v !== seen) { location.reload(); return; }
      seen = v;
    } catch (e) {}
    setTimeout(poll, 1000);
  }
  poll();
})();
</script>
"""


def watched_version(config: Config) -> str:
    """The newest change among the files a preview is made of."""
    newest = 0
    count = 0
    paths = [config.campaigns_dir, config.templates_dir]
    singles = [config.samples_path, *([config.path] if config.path else [])]
    for folder in paths:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
                    count += 1
                except OSError:
                    continue
    for path in singles:
        try:
            newest = max(newest, os.stat(path).st_mtime_ns)
        except OSError:
            continue
    return f"{newest}-{count}"


def make_app(
    config: Config,
    *,
    now: Callable[[], datetime],
    store: Callable[[], Store] | None = None,
) -> Starlette:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from dripper.preview.build import Project, personal_preview, render
    from dripper.render.renderer import Renderer

    renderer = Renderer(config, preview=True, tracking=False)

    def load() -> Project:
        return Project.load(config, now=now())

    def page(
        title: str, body: str, *, reload: bool = True, style: str = "", status: int = 200
    ) -> HTMLResponse:
        text = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}{style}</style></head><body>"
            f"<header><a href='/'>dripper preview</a> · <a href='/stats'>stats</a> · "
            f"{html.escape(title)}</header>"
            f"<main>{body}</main>{RELOAD if reload else ''}</body></html>"
        )
        return HTMLResponse(
            text, status_code=status, headers={"Content-Security-Policy": PAGE_CSP}
        )

    async def index(request: Request) -> Response:
        project = load()
        parts = []
        if project.problems:
            items = "".join(f"<li>{html.escape(str(p))}</li>" for p in project.problems)
            parts.append(f"<div class='error'><b>Problems</b><ul>{items}</ul></div>")
        for campaign in project.campaigns:
            steps = "".join(
                f"<li><a href='/c/{_q(campaign.name)}/{_q(step.id)}'>{html.escape(step.id)}</a>"
                f" · {html.escape(' | '.join(step.subjects) or step.kind)}</li>"
                for step in campaign.steps
            )
            editions = (
                f"<p>Editions: {html.escape(', '.join(e.slug for e in campaign.editions))}</p>"
                if campaign.editions
                else ""
            )
            parts.append(
                f"<h2>{html.escape(campaign.name)}</h2><p>{html.escape(campaign.description)}</p>"
                f"{editions}<ul>{steps}</ul>"
            )
        return page("campaigns", "".join(parts) or "<p>No campaigns yet.</p>")

    def chosen(request: Request, project: Project) -> tuple[Any, Any, Any, Any, int | None]:
        campaign = project.campaign(request.path_params["campaign"])
        step = project.step(campaign, request.path_params["step"])
        customer = project.customer(request.query_params.get("customer") or None)
        edition = project.edition(campaign, request.query_params.get("edition") or None)
        variant_text = request.query_params.get("variant") or ""
        variant = int(variant_text) if variant_text.isdigit() else None
        return campaign, step, customer, edition, variant

    async def step_page(request: Request) -> Response:
        project = load()
        title = f"{request.path_params['campaign']} / {request.path_params['step']}"
        try:
            campaign, step, customer, edition, variant = chosen(request, project)
            if step.personal:  # a task or a webhook (DESIGN 16): what it would make
                shown = personal_preview(renderer, campaign, step, customer, now=now())
                return page(title, f"<pre id='text'>{html.escape(shown)}</pre>")
            email = render(
                renderer, campaign, step, customer, now=now(), edition=edition, variant=variant
            )
        except DripperError as exc:
            return page(title, f"<div class='error'>{html.escape(str(exc))}</div>")
        query = urlencode(
            {
                k: v
                for k, v in request.query_params.items()
                if k in ("customer", "edition", "variant")
            }
        )
        raw = f"/raw/{_q(campaign.name)}/{_q(step.id)}?{query}"
        options = "".join(
            f"<option value='{html.escape(c.email)}'"
            f"{' selected' if c.email == customer.email else ''}>"
            f"{html.escape(c.email)}</option>"
            for c in project.samples
        )
        edition_select = ""
        if campaign.editions:
            choices = "".join(
                f"<option{' selected' if edition and e.slug == edition.slug else ''}>"
                f"{html.escape(e.slug)}</option>"
                for e in campaign.editions
            )
            edition_select = (
                f" Edition <select name='edition' onchange='this.form.submit()'>{choices}</select>"
            )
        sender = html.escape(_mailbox(renderer.sender.name, renderer.sender.email))
        src = html.escape(raw)
        body = (
            f"<form method='get'>Customer <select name='customer' onchange='this.form.submit()'>"
            f"{options}</select>{edition_select}</form>"
            f"<table class='meta'>"
            f"<tr><td>Subject</td><td id='subject'>{html.escape(email.subject)}</td></tr>"
            f"<tr><td>From</td><td>{sender}</td></tr>"
            f"<tr><td>To</td><td>{html.escape(customer.email)}</td></tr></table>"
            f"<div class='frames'>"
            f"<figure><figcaption>Desktop</figcaption>"
            f"<iframe class='desktop' sandbox='' src='{src}' title='desktop'></iframe></figure>"
            f"<figure><figcaption>Mobile (375 px)</figcaption>"
            f"<iframe class='mobile' sandbox='' src='{src}' title='mobile'></iframe></figure>"
            f"<figure><figcaption>Text version</figcaption>"
            f"<pre id='text'>{html.escape(email.text)}</pre></figure>"
            f"</div>"
        )
        return page(title, body)

    async def raw_email(request: Request) -> Response:
        project = load()
        try:
            campaign, step, customer, edition, variant = chosen(request, project)
            if step.personal:  # no email to show: the step page shows what it makes
                raise DripperError(f"{campaign.name}/{step.id} is a {step.kind}, not an email")
            email = render(
                renderer, campaign, step, customer, now=now(), edition=edition, variant=variant
            )
        except DripperError as exc:
            body = f"<pre>{html.escape(str(exc))}</pre>"
            return HTMLResponse(
                body, status_code=422, headers={"Content-Security-Policy": EMAIL_CSP}
            )
        return HTMLResponse(
            email.html,
            headers={"Content-Security-Policy": EMAIL_CSP, "X-Content-Type-Options": "nosniff"},
        )

    async def changes(request: Request) -> Response:
        return JSONResponse({"version": watched_version(config)})

    def stats_page(request: Request) -> Response:
        """Sync: starlette runs it in a worker thread, away from the event loop."""
        from sqlalchemy.exc import SQLAlchemyError

        from dripper.preview.stats_page import STYLE as STATS_STYLE
        from dripper.preview.stats_page import stats_html
        from dripper.services.stats import collect, daily_hits
        from dripper.timeparse import parse_instant

        if store is None:
            return page("stats", "<p>No database to read.</p>", reload=False, status=503)
        project = load()
        campaign = request.query_params.get("campaign") or None
        since_text = request.query_params.get("since") or None
        try:
            since = parse_instant(since_text) if since_text else None
        except ValueError as exc:
            body = f"<div class='error'>since: {html.escape(str(exc))}</div>"
            return page("stats", body, reload=False, status=400)
        try:
            opened = store()
            report = collect(
                opened,
                project.campaigns,
                now=now(),
                campaign=campaign,
                since=since,
                currency=config.currency,
            )
            daily = daily_hits(opened, campaign=campaign, since=since)
        except DripperError as exc:
            body = f"<div class='error'>{html.escape(str(exc))}</div>"
            return page("stats", body, reload=False, status=503)
        except SQLAlchemyError:  # unreachable, or its connections all in use
            body = "<div class='error'>the database did not answer: try again shortly</div>"
            return page("stats", body, reload=False, status=503)
        title = f"stats · {campaign}" if campaign else "stats"
        return page(title, stats_html(report, daily), reload=False, style=STATS_STYLE)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/c/{campaign}/{step}", step_page),
            Route("/raw/{campaign}/{step}", raw_email),
            Route("/_changes", changes),
            Route("/stats", stats_page),
        ]
    )


def serve_previews(config: Config, *, host: str, port: int, now: Callable[[], datetime]) -> None:
    import click
    import uvicorn

    opener = LazyStore(config)
    app = make_app(config, now=now, store=opener)
    click.echo(f"dripper preview: http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        opener.close()


class LazyStore:
    """The project's database, opened by the first `/stats` request (previews of emails
    never need it), from any worker thread, once."""

    def __init__(self, config: Config) -> None:
        import threading

        self._config = config
        self._lock = threading.Lock()
        self._store: Store | None = None

    def __call__(self) -> Store:
        with self._lock:
            if self._store is None:
                from dripper.store import open_store

                store = open_store(self._config.database_url)
                try:
                    store.ensure_schema()
                except BaseException:
                    store.close()
                    raise
                self._store = store
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _mailbox(name: str, email: str) -> str:
    return f"{name} <{email}>" if name else email

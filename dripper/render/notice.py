"""Emails that belong to no campaign and no customer yet: the signup's confirmation email
(DESIGN 13). Rendered from a template of the project (`templates/confirm.mjml`), else the
one dripper ships, with the same compiler, limits and MIME as every email; no tracking,
no List-Unsubscribe (there is no list to leave before the person confirms), and nothing
the person typed in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from dripper.render.mime import Address, assemble, build_headers
from dripper.render.model import RenderedEmail
from dripper.render.renderer import Renderer
from dripper.render.sandbox import Record
from dripper.render.text import tidy

SHIPPED = Path(__file__).resolve().parent.parent / "scaffold" / "templates"


def notice_renderer(renderer: Renderer, template: str) -> Renderer:
    """The project's renderer when it has `template`, else one over dripper's own."""
    if (renderer.config.templates_dir / template).is_file():
        return renderer
    return _shipped(renderer)


def _shipped(renderer: Renderer) -> Renderer:
    """One per project renderer, kept on it (and gone with it after a live reload): the
    same config, dripper's own templates folder."""
    found: Renderer | None = getattr(renderer, "_shipped_notices", None)
    if found is None:
        config = replace(renderer.config, templates_dir=SHIPPED)
        found = Renderer(config, preview=renderer.preview, recheck_seconds=60.0)
        renderer._shipped_notices = found  # type: ignore[attr-defined]
    return found


def render_notice(
    renderer: Renderer,
    template: str,
    subject: str,
    values: Mapping[str, Any],
    *,
    to: str,
    now: datetime,
    message_id: str,
    lang: str,
) -> RenderedEmail:
    """The complete email of `template` to the address `to`, in `lang`."""
    source = notice_renderer(renderer, template)
    context: dict[str, Any] = {
        "company": source._company,
        "customer": Record("customer", {"email": to, "locale": lang}),
        "campaign": None,
        "step": None,
        "edition": None,
        "event": None,
        "unsubscribe_url": "",
        "now": now,
        "subject": subject,
        "dripper_lang": lang,
        **values,
    }
    marked, plan, text = source.template(template).render(context, source.limits)
    html = plan.fill(marked, static=None, dynamic=None, tail="")
    headers = build_headers(
        sender=source.sender,
        recipient=Address("", to),
        subject=subject,
        date=now,
        message_id=message_id,
        reply_to=source.reply_to,
        unsubscribe=(),
    )
    boundary = "=_" + message_id.split("@", 1)[0]
    mime = assemble(headers, boundary, tidy(text), html)
    return RenderedEmail(message_id, source.sender.email, to, subject, html, text, headers, mime)

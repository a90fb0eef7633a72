"""Each person's morning digest of their open tasks (DESIGN 16): from `[tasks] digest_at`
(in `[sending] timezone`) on, the daemon's pass emails every person in `[tasks] people` who
has open tasks the list of them, overdue first, each with its one-click "done" link
(`/t/<token>` through `serve`), in the person's language. One a day: the day is claimed
in the database before the email goes, and given back if it could not be sent. A person
with nothing open gets no email (and a task made later that day brings the digest then).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine.timing import zone

if TYPE_CHECKING:
    from dripper.config import Config, Person
    from dripper.dkim import DkimSigner
    from dripper.render.renderer import Renderer
    from dripper.store import Store
    from dripper.store.tasks import TaskRecord
    from dripper.transport.base import Transport

log = logging.getLogger("dripper.run")
TEMPLATE = "digest.mjml"


def digest_day(config: Config, now: datetime) -> str | None:
    """The day whose digest is due at `now` (local to `[sending] timezone`), or None
    before `digest_at` (or with no digest configured)."""
    at = config.tasks.digest_at
    if at is None or not config.tasks.people:
        return None
    local = now.astimezone(zone(None, config.timezone))
    return local.date().isoformat() if local.time() >= at else None


async def send_digests(
    config: Config,
    store: Store,
    *,
    renderer: Renderer,
    transport: Transport,
    signer: DkimSigner | None,
    now: datetime,
) -> int:
    """Send today's digests not sent yet; returns how many went out."""
    from dripper.store import tasks

    day = digest_day(config, now)
    if day is None:
        return 0
    with store.reading() as conn:
        open_ = tasks.listed(conn)
    sent = 0
    for person in config.tasks.people:
        theirs = [t for t in open_ if t.assignee == person.key]
        if theirs:
            sent += await _one(config, store, person, theirs, day, renderer, transport, signer, now)
    return sent


async def _one(
    config: Config,
    store: Store,
    person: Person,
    theirs: Sequence[TaskRecord],
    day: str,
    renderer: Renderer,
    transport: Transport,
    signer: DkimSigner | None,
    now: datetime,
) -> int:
    from dripper.engine.delivery import OutcomeKind
    from dripper.errors import DripperError
    from dripper.i18n import choose
    from dripper.render.notice import render_notice
    from dripper.store import tasks
    from dripper.tokens import new_message_id
    from dripper.transport.base import Envelope

    with store.transaction() as conn:
        if not tasks.claim_digest(conn, person.key, day, now=now, count=len(theirs)):
            return 0  # sent already today (or by another daemon right now)
    t = choose(person.language, None, config.language)
    overdue = sum(task.overdue(now) for task in theirs)
    subject = t("Your tasks today: {count} open", count=len(theirs))
    if overdue:
        subject += " · " + t("{count} overdue", count=overdue)
    message_id = new_message_id(renderer.sender.email)
    try:
        email = render_notice(
            renderer,
            TEMPLATE,
            subject,
            {
                "t": t,
                "person": person.name or person.key,
                "tasks": _shown(renderer, theirs, now, t),
            },
            to=person.email,
            now=now,
            message_id=message_id,
            lang=t.lang,
        )
    except DripperError as exc:
        log.error("the digest for %s cannot be rendered: %s", person.key, exc)
        with store.transaction() as conn:
            tasks.release_digest(conn, person.key, day)
        return 0
    data = email.mime if signer is None else signer.sign(email.mime, timestamp=int(now.timestamp()))
    sender = str(config.bounces.return_path or "") or renderer.sender.email
    outcome = await transport.send(Envelope(message_id, sender, person.email, data))
    if outcome.kind is OutcomeKind.SENT:
        log.info("digest sent to %s: %d task(s)", person.key, len(theirs))
        return 1
    log.warning("digest for %s not sent (%s): tried again next pass", person.key, outcome)
    with store.transaction() as conn:
        tasks.release_digest(conn, person.key, day)
    return 0


def _shown(
    renderer: Renderer, theirs: Sequence[TaskRecord], now: datetime, t: Any
) -> list[dict[str, Any]]:
    """What the template shows of each task: its text, whom it is about, when it is due,
    and its one-click link."""
    shown = []
    for task in theirs:
        about = task.who
        if task.unsubscribed:
            about += f" ({t('unsubscribed from email')})"
        shown.append(
            {
                "id": task.id,
                "text": task.text,
                "about": about,
                "due": f"{task.due_at:%Y-%m-%d %H:%M} UTC",
                "overdue": task.overdue(now),
                "campaign": f"{task.campaign}/{task.step}",
                "url": f"{renderer.base_url}/t/{renderer.keyring.sign_task(task.link_key)}",
            }
        )
    return shown

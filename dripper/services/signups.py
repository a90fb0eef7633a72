"""Subscribers (DESIGN 13): a signup stored as pending, its confirmation email sent by the
daemon, the confirmation that makes (or brings back) a customer with their consent
recorded and a `subscribe` event, and a customer's choice of topics.

The web routes (web/signup.py, web/app.py) and the daemon (runner.py) call this; the
checks are pure (engine/signup.py), the SQL is the store's (store/signups.py,
store/consent.py).
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dripper.engine.signup import (
    PER_ADDRESS,
    SignupInvalid,
    SignupRequest,
    SignupStatus,
    confirmation_verdict,
    honeypot_filled,
    parse_signup,
)

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.dkim import DkimSigner
    from dripper.i18n import Words
    from dripper.ratelimit import RateLimiter
    from dripper.render.renderer import Renderer
    from dripper.services.planning import Planner
    from dripper.store import Store
    from dripper.store.signups import Signup
    from dripper.transport.base import Transport

log = logging.getLogger("dripper.signup")

__all__ = ["ConfirmOutcome", "Desk", "SignupInvalid", "send_confirmations"]

SUBSCRIBE_EVENT = "subscribe"
CONFIRM_TEMPLATE = "confirm.mjml"
BATCH = 100


class Answer(enum.Enum):
    """What `POST /subscribe` did. Every one but TOO_MANY gets the same answer."""

    PENDING = "pending"  # stored; its confirmation goes out on the daemon's next tick
    IGNORED = "ignored"  # the honeypot was filled: nothing stored
    TOO_MANY = "too_many"  # this IP's limit: 429


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    AGAIN = "again"  # confirmed before (a second click, a racing request)
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Pending:
    """What the confirm page shows of a signup (GET /s/ changes nothing)."""

    email: str
    locale: str | None
    outcome: ConfirmOutcome | None  # None: waiting for the button


def new_key() -> str:
    """A signup's random key: 128 bits, lower-case base32 (what its token signs)."""
    import base64

    return base64.b32encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii").lower()


class Desk:
    """The web side: signups taken, looked up and confirmed; topics chosen."""

    def __init__(self, config: Config, store: Store, planner: Planner) -> None:
        self.config = config
        self.store = store
        self.planner = planner
        settings = config.signup
        self.forms: dict[str, tuple[str, Sequence[str] | None]] = {
            form_id: (form.consent_text, form.topics) for form_id, form in settings.forms
        }

    def subscribe(
        self,
        values: Mapping[str, object],
        *,
        ip: str | None,
        user_agent: str | None,
        locale: str | None,
        now: datetime,
    ) -> Answer:
        """Store a pending signup (SignupInvalid for a wrong field: nothing stored). The
        per-IP limit counts what is stored, so it holds across `serve`'s workers."""
        from dripper.store import signups

        settings = self.config.signup
        if honeypot_filled(values, settings.honeypot):
            return Answer.IGNORED
        request: SignupRequest = parse_signup(
            values, forms=self.forms, topics=list(self.config.topics)
        )
        with self.store.transaction() as conn:
            if ip is not None:
                since = now - settings.per_ip.period
                if signups.count_from(conn, ip, since=since) >= settings.per_ip.count:
                    return Answer.TOO_MANY
            signups.add(
                conn,
                request,
                key=new_key(),
                locale=locale,
                ip=ip,
                user_agent=user_agent,
                now=now,
                expires_at=now + settings.confirm_within,
            )
        return Answer.PENDING

    def pending(self, key: str, *, now: datetime) -> Pending | None:
        """The signup behind a confirm link, without changing it (None: unknown)."""
        from dripper.store import signups

        with self.store.reading() as conn:
            found = signups.find(conn, key)
        if found is None:
            return None
        outcome = None
        if found.status is SignupStatus.CONFIRMED:
            outcome = ConfirmOutcome.AGAIN
        elif now >= found.expires_at:
            outcome = ConfirmOutcome.EXPIRED
        return Pending(found.email, found.locale, outcome)

    def confirm(
        self, key: str, *, now: datetime, ip: str | None, user_agent: str | None
    ) -> tuple[ConfirmOutcome, Pending | None]:
        """Confirm the signup: the customer made or brought back as `subscribed` with the
        topics they chose, the consent kept, a `subscribe` event recorded and planned, all
        in one transaction. The signup's row decides who confirms: two requests at once
        make one customer and one event."""
        from dripper.store import signups
        from dripper.store.records import ConsentChange

        with self.store.transaction() as conn:
            found = signups.find(conn, key, lock=True)
            if found is None:
                return ConfirmOutcome.UNKNOWN, None
            shown = Pending(found.email, found.locale, None)
            if found.status is SignupStatus.CONFIRMED:
                return ConfirmOutcome.AGAIN, shown
            if now >= found.expires_at:
                return ConfirmOutcome.EXPIRED, shown
            if not signups.set_confirmed(conn, found.id, now=now):
                return ConfirmOutcome.AGAIN, shown
            change = ConsentChange(
                at=now,
                kind="confirmed",
                marketing="subscribed",
                source=f"form:{found.form}",
                ip=ip,
                user_agent=user_agent,
                text_hash=found.text_hash,
                topics=found.topics,
            )
            signups.subscribe(conn, found, change, now=now)
            self.planner.record_in(
                conn,
                found.email,
                SUBSCRIBE_EVENT,
                at=now,
                data={"form": found.form, "topics": list(found.topics or ())},
                now=now,
                ext_id=f"signup:{found.key}",
            )
        return ConfirmOutcome.CONFIRMED, shown

    def choose_topics(
        self,
        email: str,
        topics: Sequence[str],
        *,
        now: datetime,
        ip: str | None,
        user_agent: str | None,
    ) -> bool:
        """The preference page's choice (only configured topics are kept); False when
        the customer is gone."""
        from dripper.store import consent

        kept = tuple(t for t in self.config.topics if t in set(topics))
        with self.store.transaction() as conn:
            return consent.choose_topics(conn, email, kept, now=now, ip=ip, user_agent=user_agent)


# --- the daemon's side: confirmation emails ------------------------------------------------


async def send_confirmations(
    config: Config,
    store: Store,
    *,
    renderer: Renderer,
    transport: Transport,
    signer: DkimSigner | None,
    now: datetime,
    limiter: RateLimiter | None = None,
) -> int:
    """Send the queued confirmation emails (each claimed under a lease, checked against
    the limits, rendered, signed, sent, marked). Returns how many went out."""
    from dripper.store import signups

    if not config.signup.enabled:
        return 0
    sent = 0
    lease = config.lease
    # Kept past expiry for as long as a limit looks back on them (a day, or `per_ip`).
    keep = max(PER_ADDRESS, config.signup.per_ip.period)
    with store.transaction() as conn:
        signups.purge(conn, before=now - keep)
    while True:
        with store.transaction() as conn:
            due = signups.claim(conn, now=now, lease=lease, limit=BATCH)
        if not due:
            return sent
        for signup in due:
            if limiter is not None:  # the shared send rate counts them too
                await limiter.wait()
            sent += await _one(config, store, signup, renderer, transport, signer, now)
        if len(due) < BATCH:
            return sent


async def _one(
    config: Config,
    store: Store,
    signup: Signup,
    renderer: Renderer,
    transport: Transport,
    signer: DkimSigner | None,
    now: datetime,
) -> int:
    from dripper.engine.delivery import OutcomeKind
    from dripper.errors import DripperError
    from dripper.i18n import choose
    from dripper.render.notice import render_notice
    from dripper.store import signups
    from dripper.tokens import Keyring, new_message_id
    from dripper.transport.base import Envelope

    with store.reading() as conn:
        facts = signups.facts(conn, signup.email, signup.expires_at, now=now)
    why = confirmation_verdict(facts, now=now, max_per_day=config.signup.max_per_day)
    if why:
        with store.transaction() as conn:
            signups.mark(conn, signup.id, SignupStatus.LIMITED, now=now, reason=why)
        log.info("signup %d: no confirmation email (%s)", signup.id, why)
        return 0
    keyring: Keyring = renderer.keyring
    url = f"{renderer.base_url}/s/{keyring.sign_signup(signup.key)}"
    message_id = signup.message_id or new_message_id(renderer.sender.email)
    t = choose(signup.locale, None, config.language)
    try:
        email = render_notice(
            renderer,
            CONFIRM_TEMPLATE,
            t("Please confirm your subscription to {company}", company=_company(config, t)),
            {"confirm_url": url, "t": t, "expires_at": signup.expires_at},
            to=signup.email,
            now=now,
            message_id=message_id,
            lang=t.lang,
        )
    except DripperError as exc:
        with store.transaction() as conn:
            signups.mark(conn, signup.id, SignupStatus.FAILED, now=now, reason=f"render: {exc}")
        log.error("signup %d: the confirmation email cannot be rendered: %s", signup.id, exc)
        return 0
    data = email.mime if signer is None else signer.sign(email.mime, timestamp=int(now.timestamp()))
    sender = str(config.bounces.return_path or "") or renderer.sender.email
    outcome = await transport.send(Envelope(message_id, sender, signup.email, data))
    with store.transaction() as conn:
        if outcome.kind is OutcomeKind.SENT:
            signups.mark(conn, signup.id, SignupStatus.SENT, now=now, message_id=message_id)
            return 1
        retry = _retry_at(config, signup.attempts, now)
        if outcome.kind is OutcomeKind.DEFERRED and retry is not None:
            signups.mark(
                conn,
                signup.id,
                SignupStatus.QUEUED,
                now=now,
                reason=outcome.reply,
                message_id=message_id,
                retry_at=retry,
            )
        else:
            signups.mark(
                conn,
                signup.id,
                SignupStatus.FAILED,
                now=now,
                reason=outcome.reply,
                message_id=message_id,
            )
    return 0


def _retry_at(config: Config, attempts: int, now: datetime) -> datetime | None:
    """Retried like any email ([sending] retry), but never past a few hours: a link that
    comes a day late is a link nobody remembers asking for."""
    delays = config.retry
    if attempts >= len(delays):
        return None
    delay = delays[attempts]
    return None if delay > timedelta(hours=6) else now + delay


def _company(config: Config, t: Words) -> str:
    name = str(config.company.get("name") or "")
    return name or t("our newsletter")

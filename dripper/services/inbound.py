"""Mail that comes back, the mail half of listening (DESIGN 8): replies, bounces,
complaints, auto-replies and unsubscribe mails, whichever way they come in (the IMAP poller
of `dripper run`, `POST /inbound`, `dripper inbound` from an MTA pipe), go through `take_in`:
parsed and classified by the pure core (`dripper.engine.inbound`) from a bounded handful of
indexed look-ups made in a read transaction, then recorded once by their Message-ID and
acted on in one write transaction:

    bounce_hard   the address is suppressed (reason `bounced`), but not for a 5.7.x
                  (refused by policy: the content or the sender's reputation, not the address)
    bounce_soft   counted; `[bounces] soft_limit` (3) soft-bounced emails in a row with no
                  open, click or reply in between suppress (reason `bounced`), however far
                  apart: several notices about one email count once (DESIGN 12; the
                  counting rule is written down in `dripper.store.inbound`)
    complaint     unsubscribed and suppressed (reason `complained`)
    auto_reply    recorded; never a reply
    reply         a `reply` event (ends `exit_on: [reply]` enrollments); with `[replies]
                  notify` set, forwarded to that address by the next pass of the daemon
    unsubscribe   unsubscribed
    unmatched     recorded, left alone (a report naming no email of ours, only an address;
                  a reply from someone other than the customer the email went to)

A failure of the database is raised as it is; `temporary(exc)` tells the ways in whether
the sender should keep the message and try again (`dripper inbound` exits 75, EX_TEMPFAIL;
`POST /inbound` answers 503 with Retry-After).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine.inbound import InboundClass, Verdict, classify, parse_inbound

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.services.planning import Planner
    from dripper.store import Connection, Store
    from dripper.store.inbound import Email
    from dripper.transport.base import Transport

log = logging.getLogger("dripper.inbound")

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # what any way in accepts; a bigger one is refused
POLICY = "5.7."  # a rejection by policy: never the address's fault


@dataclass
class Polled:
    """What one poll of the mailbox did."""

    recorded: int = 0
    error: str | None = None


@dataclass(frozen=True)
class TakenIn:
    """What became of one inbound message."""

    kind: InboundClass
    new: bool  # False: recorded before (polled or posted again): nothing done twice
    address: str | None
    reason: str


class Inbox:
    batch = 50  # messages fetched per round trip; each batch is confirmed on its own

    def __init__(self, config: Config, store: Store, planner: Planner, domain: str) -> None:
        self.config = config
        self.store = store
        self.planner = planner
        self.domain = domain
        self.return_path = str(config.bounces.return_path or "") or None
        self.soft_limit = int(config.bounces.soft_limit or 3)
        self.notify = str(config.replies.notify or "")
        self.unsubscribe_mailto = config.unsubscribe_mailto or None

    def take_in(self, raw: bytes, *, via: str, now: datetime) -> TakenIn:
        """Classify, record once and act on one message. Everything it looks up (was it
        recorded before, which of our emails it names) is read first, in a read
        transaction; only recording and acting take the write transaction (on SQLite the
        write lock), so a message full of ids never holds up unsubscribes or the events API.
        Database errors pass through (`temporary` says which are worth a retry)."""
        from dripper.store import inbound as stored

        inbound = parse_inbound(raw, return_path=self.return_path)
        key = stored.message_key(inbound.message_id, raw)
        with self.store.reading() as conn:
            before = stored.recorded(conn, key)
            if before is not None:
                kind = InboundClass(before.kind)
                return TakenIn(kind, False, before.address, before.reason or "")
            known = stored.known(conn, inbound, domain=self.domain, now=now)
            verdict = classify(inbound, known, unsubscribe_mailto=self.unsubscribe_mailto)
            delivery = verdict.delivery
            email = stored.email_of(conn, delivery.message_id) if delivery is not None else None
        reply = verdict.kind is InboundClass.REPLY
        values: dict[str, Any] = {
            "message_key": key,
            "message_id": clean(inbound.message_id, 998),
            "kind": verdict.kind.value,
            "received_at": now,
            "via": via,
            "customer_id": delivery.customer_id if delivery is not None else None,
            "outbox_id": email[0] if email is not None else None,
            "address": clean((verdict.address or "").lower(), 320),
            "status": clean(verdict.status, 16),
            "weak": verdict.weak,
            "subject": clean(inbound.subject, 500),
            "text": clean(inbound.text, 32_000) if reply else None,
            "reason": clean(verdict.reason, 500),
            "notify": "pending" if self._forwards(verdict) else None,
        }
        with self.store.transaction() as conn:
            # Recorded meanwhile by another way in (polled and piped at once): done once.
            if not stored.record(conn, values):
                return TakenIn(verdict.kind, False, verdict.address, verdict.reason)
            self._act(conn, verdict, values["subject"] or "", email, now)
        return TakenIn(verdict.kind, True, verdict.address, verdict.reason)

    def _forwards(self, verdict: Verdict) -> bool:
        return bool(self.notify) and verdict.kind is InboundClass.REPLY

    def _act(
        self,
        conn: Connection,
        verdict: Verdict,
        subject: str,
        email: Email | None,
        now: datetime,
    ) -> None:
        from dripper.store import inbound as stored
        from dripper.store import privacy
        from dripper.store.records import SuppressionReason

        kind, address = verdict.kind, (verdict.address or "").lower()
        if kind in (InboundClass.BOUNCE_HARD, InboundClass.BOUNCE_SOFT, InboundClass.COMPLAINT):
            _track(conn, verdict, email, now)
        if kind is InboundClass.BOUNCE_HARD and address:
            if not (verdict.status or "").startswith(POLICY):
                privacy.suppress(
                    conn, address, reason=SuppressionReason.BOUNCED, now=now, source="hard bounce"
                )
        elif kind is InboundClass.BOUNCE_SOFT and address:
            owner = verdict.delivery.customer_id if verdict.delivery is not None else None
            if stored.soft_bounces_in_a_row(conn, address, owner) >= self.soft_limit:
                privacy.suppress(
                    conn, address, reason=SuppressionReason.BOUNCED, now=now, source="soft bounces"
                )
        elif kind is InboundClass.COMPLAINT and address:
            privacy.suppress(
                conn, address, reason=SuppressionReason.COMPLAINED, now=now, source="complaint"
            )
        elif kind is InboundClass.UNSUBSCRIBE and address:
            privacy.unsubscribe(
                conn, address, reason=SuppressionReason.UNSUBSCRIBED, now=now, source="mail"
            )
            _track(conn, verdict, email, now)  # against the email it names, if it does
        elif kind is InboundClass.REPLY and verdict.delivery is not None:
            _track(conn, verdict, email, now)
            data = {"subject": subject[:200], "weak": verdict.weak}
            self.planner.check(now, data, where="reply")
            customer = verdict.delivery.email
            self.planner.record_in(conn, customer, "reply", at=now, data=data, now=now)

    # --- the IMAP poller of `dripper run` -------------------------------------------------------

    def poll(self, now: datetime) -> Polled:
        """Read what is new in the `[replies]` mailbox, record each message, and move on
        only past what was recorded: a connection cut mid-fetch loses and repeats nothing
        (what was recorded is not recorded again: the Message-ID says so). Blocking: the
        daemon runs it in a worker thread. Errors come back in `Polled.error`."""
        from dripper.errors import ConfigError
        from dripper.inbound.imap import ImapMailbox
        from dripper.inbound.mailbox import MailboxError
        from dripper.store import inbound as stored

        name = mailbox_name(self.config)
        polled = Polled()
        try:
            with self.store.reading() as conn:
                start = stored.mailbox(conn, name)
            with ImapMailbox.from_config(self.config) as mailbox:
                new = mailbox.fetch_new(start, batch=self.batch)
                if new.restarted:
                    log.warning("%s: UIDVALIDITY changed: reading the folder again", name)
                with self.store.transaction() as conn:
                    stored.save_mailbox(conn, name, new.state, now=now)
                for batch in new:
                    for message in batch.messages:
                        taken = self.take_in(message.raw, via="imap", now=now)
                        polled.recorded += taken.new
                    for big in batch.too_large:
                        log.warning("%s: message %d (%d bytes) is too large: left in the folder",
                                    name, big.uid, big.size)  # fmt: skip
                    mailbox.move_processed(m.uid for m in batch.messages)
                    with self.store.transaction() as conn:
                        stored.save_mailbox(conn, name, batch.state, now=now)
        except (MailboxError, ConfigError) as exc:
            polled.error = str(exc)
        return polled

    # --- forwarding replies to a person ------------------------------------------------------

    async def forward_replies(self, transport: Transport, now: datetime) -> int:
        """Replies waiting for `[replies] notify`, forwarded through the daemon's transport
        (a failure is marked, and logged once; the reply itself is kept)."""
        from dripper.store import inbound as stored
        from dripper.transport.base import OutcomeKind

        if not self.notify:
            return 0
        with self.store.transaction() as conn:
            waiting = stored.waiting_replies(conn)
        sent: list[int] = []
        failed: list[int] = []
        for reply in waiting:
            envelope = _forward(self.config, self.notify, reply, now)
            outcome = await transport.send(envelope)
            if outcome.kind is OutcomeKind.SENT:
                sent.append(reply.id)
            elif outcome.kind is OutcomeKind.FAILED:
                failed.append(reply.id)
                log.error("reply %s not forwarded to %s: %s", reply.id, self.notify, outcome)
        with self.store.transaction() as conn:
            stored.mark_notified(conn, sent, "sent")
            stored.mark_notified(conn, failed, "failed")
        return len(sent)


def temporary(exc: BaseException) -> bool:
    """A failure that trying again later can cure, so the message must not be refused:
    an outage of the database (store/outage.py: unreachable, SQLite locked past the busy
    timeout, a full disk, a read-only file), or a database that cannot be opened at all
    (a wrong path is the operator's to fix; meanwhile the MTA keeps the message)."""
    from dripper.errors import StoreError
    from dripper.store.outage import is_outage

    return isinstance(exc, StoreError) or is_outage(exc)


def clean(text: str | None, limit: int) -> str | None:
    """Text from a stranger's message as a database can keep it: no NUL (PostgreSQL refuses
    it), no lone surrogate (not text), no more than `limit` characters."""
    if not text:
        return None
    text = text.replace("\0", "").encode("utf-8", "replace").decode("utf-8")
    return text[:limit] or None


def _track(conn: Connection, verdict: Verdict, email: Email | None, now: datetime) -> None:
    """A bounce, complaint or reply counted against the email it answers (for the stats):
    a hard bounce as `bounce` (never delivered), a soft one as `soft_bounce`."""
    from dripper.store.tracking import StoredHit, insert_hits

    delivery = verdict.delivery
    if delivery is None or email is None or delivery.customer_id is None:
        return
    kind = {
        InboundClass.BOUNCE_HARD: "bounce",
        InboundClass.BOUNCE_SOFT: "soft_bounce",
        InboundClass.COMPLAINT: "complaint",
        InboundClass.REPLY: "reply",
        InboundClass.UNSUBSCRIBE: "unsubscribe",
    }[verdict.kind]
    data = {"class": verdict.kind.value, "status": verdict.status, "weak": verdict.weak}
    outbox_id, campaign, step, variant = email
    hit = StoredHit(
        outbox_id, delivery.customer_id, kind, now, False, None, None, data, campaign, step, variant
    )
    insert_hits(conn, [hit])


def _forward(config: Config, notify: str, reply: Any, now: datetime) -> Any:
    """The reply as a new email to the person who answers customers."""
    from email.message import EmailMessage
    from email.utils import format_datetime, parseaddr

    from dripper.tokens import new_message_id
    from dripper.transport.base import Envelope

    sender = parseaddr(config.sender_from)[1] or notify
    message = EmailMessage()
    message["From"] = config.sender_from or sender
    message["To"] = notify
    if reply.customer_email:
        message["Reply-To"] = reply.customer_email
    subject = f"Reply from {reply.customer_email or 'a customer'}: {reply.subject}"
    message["Subject"] = " ".join(subject.split())[:200]
    message["Date"] = format_datetime(now)
    message_id = new_message_id(sender)
    message["Message-ID"] = f"<{message_id}>"
    message["Auto-Submitted"] = "auto-forwarded"  # RFC 3834: never answered by a robot
    message.set_content(
        f"{reply.customer_email or 'A customer'} wrote on "
        f"{reply.received_at:%Y-%m-%d %H:%M} UTC:\n\n"
        f"{reply.text}\n\n-- \nForwarded by dripper; answer to reply to the customer.\n"
    )
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return Envelope(message_id, sender, notify, data)


def mailbox_name(config: Config) -> str:
    replies = config.replies
    return f"{replies.username}@{replies.imap_host}:{replies.imap_port}/{replies.folder}"

"""Listening: what comes back in (opens, clicks, unsubscribes, one-click answers and
referral visits from `dripper serve`; replies, bounces and complaints by mail), events and
suppressions out.

The web app and the mail intake gather facts; the pure core classifies them
(`dripper.engine.hits`); this service writes what they mean, each in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine.hits import HitClass, HitFacts, HitKind, classify
from dripper.services.hits import implied_open
from dripper.services.inbound import Inbox, TakenIn
from dripper.services.report import Report
from dripper.tokens import message_domain

log = logging.getLogger("dripper.inbound")

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.services.planning import Planner
    from dripper.store import Store
    from dripper.store.tracking import Delivery
    from dripper.transport.base import Transport


class Listener:
    """Takes in what customers and their mail servers send back."""

    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        *,
        planner: Planner | None = None,
    ) -> None:
        from dripper.services.planning import Planner

        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self.planner = planner or Planner(config, store, self.campaigns)
        self.domain = message_domain(config.sender_from)
        self.inbox = Inbox(config, store, self.planner, self.domain)
        self._mailbox_error: str | None = None

    # --- the daemon's pass ---------------------------------------------------------------

    async def listen(self, now: datetime, *, transport: Transport | None = None) -> Report:
        """The daemon's pass over what came back by mail: the `[replies]` mailbox polled
        (in a worker thread: sending never waits for a slow server, and a mailbox that
        fails is one log line and a status field, never a stopped daemon), then the replies
        waiting for `[replies] notify` forwarded through `transport`. Hits and answers
        arrive through `dripper serve` as they happen."""
        import asyncio

        report = Report()
        if self.config.replies.imap_host:
            polled = await asyncio.to_thread(self.inbox.poll, now)
            report.inbound = polled.recorded
            report.mailbox = polled.error
            if polled.error != self._mailbox_error:
                if polled.error:
                    log.error("reply mailbox: %s", polled.error)
                else:
                    log.info("reply mailbox: reachable again")
                self._mailbox_error = polled.error
        if transport is not None:
            report.forwarded = await self.inbox.forward_replies(transport, now)
        return report

    def take_in(self, raw: bytes, *, via: str, now: datetime) -> TakenIn:
        """One inbound message, classified, recorded once and acted on (services.inbound)."""
        return self.inbox.take_in(raw, via=via, now=now)

    # --- which email a token names -----------------------------------------------------------

    def delivery(self, delivery_id: str) -> Delivery | None:
        """The delivery a token names (None: unknown, or its customer was forgotten)."""
        from dripper.store import tracking

        with self.store.reading() as conn:
            return tracking.deliveries(conn, [delivery_id], domain=self.domain).get(delivery_id)

    # --- unsubscribes, answers, referrals ------------------------------------------------------

    def unsubscribe(self, delivery: Delivery, *, now: datetime, how: str) -> bool:
        """Unsubscribe the customer an email went to, and note which email it was (for the
        stats). Idempotent: True the first time, False when they already were."""
        from dripper.customers.model import Status
        from dripper.store import privacy
        from dripper.store.customers import get_customer
        from dripper.store.records import SuppressionReason, TrackingKind
        from dripper.store.tracking import StoredHit, insert_hits

        with self.store.transaction() as conn:
            customer = get_customer(conn, delivery.email)
            if customer is None or customer.status is Status.UNSUBSCRIBED:
                return False
            privacy.unsubscribe(
                conn,
                delivery.email,
                reason=SuppressionReason.UNSUBSCRIBED,
                now=now,
                source=f"{how}: {delivery.campaign}/{delivery.step}",
            )
            hit = StoredHit(
                delivery.outbox_id,
                delivery.customer_id,
                TrackingKind.UNSUBSCRIBE.value,
                now,
                False,
                None,
                None,
                {"how": how},
                delivery.campaign,
                delivery.step,
                delivery.variant,
            )
            insert_hits(conn, [hit])
        return True

    def answer(
        self,
        delivery: Delivery,
        question: str,
        answer: str,
        *,
        now: datetime,
        method: str,
        user_agent: str,
        ip: str | None,
    ) -> bool:
        """A one-click answer: a `feedback` event (campaigns may follow up on it) and the
        answer on the customer sheet as the attribute `question`. A link scanner's visit
        is kept apart and answers nothing; a second click of the same answer changes
        nothing. True when an answer was recorded."""
        from dripper.store.records import TrackingKind
        from dripper.store.replays import answered_before, replayed_answer
        from dripper.store.tracking import StoredHit, insert_hits, is_opened

        verdict = classify(
            HitFacts(HitKind.CLICK, now, method, user_agent, ip, delivery.sent_at, None)
        )
        human = verdict.cls is HitClass.HUMAN
        data: dict[str, Any] = {
            "question": question,
            "answer": answer,
            "campaign": delivery.campaign,
            "step": delivery.step,
        }
        hit = StoredHit(
            delivery.outbox_id,
            delivery.customer_id,
            TrackingKind.ANSWER.value,
            now,
            not human,
            None,
            user_agent,
            {**data, "class": verdict.cls.value, "reason": verdict.reason},
            delivery.campaign,
            delivery.step,
            delivery.variant,
        )
        if not human:
            with self.store.transaction() as conn:
                # A scanner replaying the link: counted on the first row, not stored again.
                if not replayed_answer(conn, delivery.outbox_id, question, answer):
                    insert_hits(conn, [hit])
            return False
        self.planner.check(now, data, where="answer")
        with self.store.transaction() as conn:
            if answered_before(conn, delivery.outbox_id, question, answer):
                return False
            # An answer is a person's click: like a click, it implies the email was opened.
            opened = is_opened(conn, delivery.outbox_id)
            implied = [] if opened else [implied_open(delivery, now, by="answer")]
            insert_hits(conn, [*implied, hit])
            self.planner.record_in(
                conn,
                delivery.email,
                "feedback",
                at=now,
                data=data,
                now=now,
                attributes={question: answer},
            )
        return True

    def referrer(self, code: str, *, now: datetime) -> Customer | None:
        """The customer whose referral link this is (None: no such code any more); the
        visit is noted against them, one row a day with the day's visits counted on it (a
        public link may be opened without end)."""
        from dripper.store import sheet
        from dripper.store.replays import referral_visit

        with self.store.transaction() as conn:
            customer = sheet.by_referral_code(conn, code)
            if customer is None:
                return None
            referral_visit(conn, customer.id, now=now)
        return customer

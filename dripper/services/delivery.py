"""Delivery: claim what is due, check it again, render, sign, send, record.

Leases are in database time and kept alive while a batch is in flight; an attempt is
written before its email goes out and its outcome right after, so a daemon killed at any
moment leaves only ambiguous sends (retried with the same Message-ID), never lost ones.
What an outcome means (retry, give up, suppress, count towards a pause) is decided by the
pure policy in `dripper.engine.delivery`; this service applies it.

Sending a claimed batch (chunks, attempts, leases, what an outage parks) is
`dripper.services.sending`; after a database outage `Sender.settle` records and gives
back what it parked, before anything else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.engine import plan
from dripper.engine.delivery import PolicyEffect, RetryPolicy, pause_reason, should_pause
from dripper.engine.model import SendStatus, Verdict
from dripper.services.report import Progress, Report
from dripper.services.sending import Parked, delivery_of, without_addresses
from dripper.store.outage import is_outage

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from dripper.campaigns import Campaign, Edition
    from dripper.config import Config
    from dripper.dkim import DkimSigner
    from dripper.ratelimit import RateLimiter
    from dripper.render.renderer import Renderer
    from dripper.store import Store
    from dripper.store.deliveries import DueSend, SendResult
    from dripper.transport.base import Transport
    from dripper.transport.webhook import WebhookClient

log = logging.getLogger("dripper.run")
HELD_REASON = "held out: the campaign's holdout (stats compares it with those emailed)"
# DKIM signatures made at once, beside the rendering: two threads keep up with one
# renderer on two cores (an RSA-2048 signature costs about what a render does).
SIGNING_THREADS = 2


class Sender:
    """Sends what is due through one transport, signed by one signer, at one shared rate."""

    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        *,
        renderer: Renderer,
        transport: Transport,
        owner: str | None = None,
        signer: DkimSigner | None = None,
        limiter: RateLimiter | None = None,
        webhooks: WebhookClient | None = None,
    ) -> None:
        """`signer`: DKIM (None: unsigned). `limiter`: the shared send rate (None: as fast
        as the transport's pool goes). `owner` names this daemon on its leases (default:
        host, process and a random part)."""
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self.by_name = {c.name: c for c in self.campaigns}
        self.renderer = renderer
        self.transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.signer = signer
        self.limiter = limiter
        self.progress = Progress()
        self.retry = RetryPolicy(config.retry, config.give_up_after)
        self.pause_after = int(config.transport.pause_after_policy)
        self.exempt_steps = {  # transactional steps: never counted by the frequency cap
            (c.name, step.id) for c in self.campaigns for step in c.steps if step.transactional
        }
        self._domain_noted = False  # the Message-IDs' domain is remembered (once)
        # What a database outage left in memory (issue 23): outcomes of sends that went
        # out but could not be recorded, and sends claimed that never went out. Settled
        # the moment the database answers again (`settle`), before anything else.
        self.parked = Parked()
        self._signing: ThreadPoolExecutor | None = None  # DKIM, begun at the first signature
        # Webhook steps' POSTs (DESIGN 16); `simulate` passes one that posts nothing.
        self.webhooks = webhooks or _webhook_client(config)

    def use(self, campaigns: Sequence[Campaign], renderer: Renderer) -> None:
        """Another version of the campaigns and the templates, from the next batch on."""
        self.campaigns = list(campaigns)
        self.by_name = {c.name: c for c in self.campaigns}
        self.renderer = renderer
        self.exempt_steps = {
            (c.name, step.id) for c in self.campaigns for step in c.steps if step.transactional
        }

    async def close(self) -> None:
        """The transport's connections closed, the signing threads ended."""
        await self.transport.close()
        await self.webhooks.close()
        if self._signing is not None:
            self._signing.shutdown(wait=True)
            self._signing = None

    async def send_due(self, now: datetime, *, stop: asyncio.Event | None = None) -> Report:
        """Claim what is due in batches; check, render, sign, send and record each.

        `stop` (SIGTERM): no new batch is claimed; the one in flight is finished and
        recorded. Leases are in database time and kept alive while a batch is in flight;
        an attempt is written before its email goes out, so a daemon killed mid-send
        leaves an ambiguous send (retried with the same Message-ID), never a lost one."""
        from dripper.store import deliveries

        report = Report()
        self.settle(now)  # what an outage left: recorded, given back, before anything else
        if not self._domain_noted:  # before any Message-ID is given with it
            from dripper.store import message_domains
            from dripper.tokens import message_domain

            with self.store.transaction() as conn:
                domain = message_domain(self.renderer.sender.email)
                message_domains.remember(conn, domain)
            self._domain_noted = True
        with self.store.transaction() as conn:
            _requeued, ambiguous = deliveries.recover_orphans(
                conn,
                now=now,
                retry_at=now + self.config.retry[0],
                every=not self.store.concurrent_writers,
            )
        if ambiguous:
            log.warning(
                "%d send(s) were in flight when a daemon stopped: recorded as ambiguous "
                "(possibly delivered), retried with the same Message-ID",
                ambiguous,
            )
        report.ambiguous += ambiguous
        self._files_back()
        while stop is None or not stop.is_set():
            with self.store.transaction() as conn:
                due = self._claim(conn, now, claim=True)
            if not due:
                break
            try:
                results, recorded = await self._deliver(due, now, report)
            except Exception as exc:
                if is_outage(exc):  # nothing of this batch left (see _send_all)
                    self.parked.unstarted.update(d.id for d in due)
                    self.parked.unstarted.difference_update(self.parked.handled())
                raise
            rest = [(d, r) for d, r in zip(due, results, strict=True) if r.id not in recorded]
            if rest:
                try:
                    with self.store.transaction() as conn:
                        deliveries.record_results(conn, [r for _, r in rest], now=now)
                        self.after_results(
                            conn, [d for d, _ in rest], [r for _, r in rest], now
                        )
                except Exception as exc:
                    if is_outage(exc):
                        self.parked.results += rest
                    raise
        return report

    def settle(self, now: datetime) -> None:
        """After a database outage: record the outcomes of the sends that went out (so
        none becomes ambiguous), take back the attempts of those that never left, and
        give back to the queue what this daemon still holds (nothing waits out a lease).
        Raises while the database is still down; the parked work stays parked."""
        from dripper.store import deliveries

        parked = self.parked
        if not parked:
            return
        with self.store.transaction() as conn:
            if parked.results:
                results = [r for _, r in parked.results]
                deliveries.record_results(conn, results, now=now, attempts=parked.attempts)
                self.after_results(conn, [d for d, _ in parked.results], results, now)
            given = deliveries.give_back(
                conn, sorted(parked.unstarted), owner=self.owner, now=now
            )
            _requeued, ambiguous = deliveries.recover_orphans(
                conn,
                now=now,
                retry_at=now + self.config.retry[0],
                owner=self.owner,
            )
        log.warning(
            "database back: %d outcome(s) recorded, %d send(s) given back to the queue%s",
            len(parked.results),
            given,
            f", {ambiguous} of unknown outcome recorded as ambiguous" if ambiguous else "",
        )
        self.parked = Parked()

    async def dry_run(self, now: datetime) -> Report:
        """What `send_due` would send now, rendered (and signed) but neither sent nor
        recorded: nothing is claimed, planned or written."""
        report = Report()
        with self.store.reading() as conn:
            due = self._claim(conn, now, claim=False)
        await self._deliver(due, now, report, dry=True)
        return report

    def envelope_sender(self, send: DueSend) -> str:
        """MAIL FROM: `[bounces] return_path` with the delivery id after a `+` (VERP), so a
        bounce names its delivery even when its body is mangled; else the From address."""
        from dripper.tokens import delivery_id

        return_path = str(self.config.bounces.return_path or "")
        if not return_path:
            return self.renderer.sender.email
        local, _, domain = return_path.rpartition("@")
        return f"{local}+{delivery_id(send.message_id)}@{domain}"

    def _claim(self, conn: Any, now: datetime, *, claim: bool) -> list[DueSend]:
        """The next batch due (claimed under a lease, or only looked at for --dry-run)."""
        from dripper.store import deliveries
        from dripper.tokens import new_message_id

        sender = self.renderer.sender.email
        while True:
            due = deliveries.claim_due(
                conn,
                now=now,
                limit=self.config.batch_size,
                owner=self.owner,
                lease=self.config.lease,
                new_message_id=lambda: new_message_id(sender),
                claim=claim,
            )
            kept = [d for d in due if d.campaign in self.by_name]
            if not claim:  # a dry run writes nothing (a customer without a code shows none)
                return kept
            if len(kept) < len(due):
                self._hold_orphans(conn, [d for d in due if d.campaign not in self.by_name], now)
                if not kept:
                    continue  # their campaigns are paused now: the next claim skips them
            return deliveries.give_referral_codes(conn, kept)

    def _hold_orphans(self, conn: Any, orphans: Sequence[DueSend], now: datetime) -> None:
        """Sends of a campaign whose file is gone (DESIGN 14): back to the queue, and the
        campaign paused, so they wait (kept, shown by `dripper campaigns`) instead of being
        cancelled; its history stays in `stats`. The file's return resumes it."""
        from dripper.store import campaign_state, deliveries

        deliveries.give_back(conn, [d.id for d in orphans], owner=self.owner, now=now)
        for name in sorted({d.campaign for d in orphans}):
            campaign_state.pause_campaign(conn, name, campaign_state.NO_FILE)
            log.warning("campaign %s has no file any more: its sends are held", name)

    def _files_back(self) -> None:
        """A campaign paused because its file was gone, whose file is back: resumed."""
        from dripper.store import campaign_state

        with self.store.transaction() as conn:
            for name, reason in campaign_state.paused_campaigns(conn).items():
                if reason == campaign_state.NO_FILE and name in self.by_name:
                    campaign_state.resume_campaign(conn, name)
                    log.info("campaign %s has its file again: its sends go out", name)

    def after_results(
        self, conn: Any, due: Sequence[DueSend], results: Sequence[SendResult], now: datetime
    ) -> None:
        """Apply what the policy decided: suppress addresses that do not exist; count each
        campaign's run of policy rejections in the database and pause it at the limit."""
        from dripper.store import campaign_state
        from dripper.store.privacy import suppress
        from dripper.store.records import SuppressionReason

        runs: dict[str, tuple[int, bool, SendResult]] = {}  # campaign -> hits, reset, last
        for result, send in zip(results, due, strict=True):
            if result.suppress:
                suppress(
                    conn,
                    send.customer.email,
                    reason=SuppressionReason.BOUNCED,
                    now=now,
                )
            hits, reset, last = runs.get(send.campaign, (0, False, result))
            if result.policy is PolicyEffect.HIT:
                runs[send.campaign] = (hits + 1, reset, result)
            elif result.policy is PolicyEffect.RESET:
                runs[send.campaign] = (0, True, last)  # a delivery ends the run so far
        for campaign, (hits, reset, last) in runs.items():
            counted = campaign_state.count_policy_hits(
                conn, campaign, hits=hits, reset=reset
            )
            if hits and should_pause(counted, self.pause_after):
                reason = pause_reason(counted, last.as_outcome(), campaign)
                campaign_state.pause_campaign(conn, campaign, reason)
                log.error("campaign %s %s", campaign, reason)

    async def _deliver(
        self, due: Sequence[DueSend], now: datetime, report: Report, *, dry: bool = False
    ) -> tuple[list[SendResult], set[int]]:
        from dripper.store import deliveries
        from dripper.store.deliveries import SendResult

        cap = self.config.max_per_customer
        recent: dict[int, list[datetime]] = {}
        if cap is not None:
            with self.store.reading() as conn:
                recent = deliveries.recent_sends(
                    conn,
                    {d.customer.id for d in due},
                    since=now - cap.period,
                    campaigns=[c.name for c in self.campaigns if not c.transactional],
                    exempt_steps=self.exempt_steps,
                )
        editions = _Editions(self.store)
        # Decide in order first (the cap must count sends made earlier in this batch), then
        # render and send concurrently.
        results: dict[int, SendResult] = {}
        to_send: list[tuple[DueSend, Campaign, Any, Edition | None]] = []
        personal: list[tuple[DueSend, Campaign, Any]] = []  # tasks and webhooks (DESIGN 16)
        for send in due:
            campaign = self.by_name.get(send.campaign)
            step = campaign.step(send.step) if campaign is not None else None
            if campaign is None or step is None:
                what = "campaign" if campaign is None else "step"
                results[send.id] = SendResult(
                    send.id, SendStatus.CANCELLED, f"{what} no longer exists"
                )
                continue
            edition = editions.get(campaign, send.occurrence) if campaign.editions else None
            ctx = plan.context(send.customer, campaign, now, send.event, edition)
            decision = plan.send_decision(
                campaign=campaign,
                step=step,
                customer=send.customer,
                suppressed=send.suppressed,
                enrollment_status=send.enrollment_status,
                ctx=ctx,
                now=now,
                fallback_tz=self.config.timezone,
                quiet_hours=self.config.quiet_hours,
                cap=cap,
                recent_sends=recent.get(send.customer.id, []),
                suppression=send.suppression,
            )
            if step.kind != send.kind:  # edited from an email into a task, or back
                results[send.id] = SendResult(
                    send.id,
                    SendStatus.CANCELLED,
                    f"the step is a {step.kind} now; it was planned as a {send.kind}",
                )
            elif decision.verdict is Verdict.SEND and send.held and not step.transactional:
                # Held out (DESIGN 17): decided like a send, at the same moment, never sent.
                results[send.id] = SendResult(send.id, SendStatus.HELD, HELD_REASON)
            elif decision.verdict is Verdict.SEND and step.personal:
                personal.append((send, campaign, step))
            elif decision.verdict is Verdict.SEND:
                if not (campaign.transactional or step.transactional):
                    recent.setdefault(send.customer.id, []).append(now)
                to_send.append((send, campaign, step, edition))
            elif decision.verdict is Verdict.DEFER:
                results[send.id] = SendResult(
                    send.id, SendStatus.PLANNED, decision.reason, next_attempt_at=decision.until
                )
            else:
                status = (
                    SendStatus.SKIPPED if decision.verdict is Verdict.SKIP else SendStatus.CANCELLED
                )
                results[send.id] = SendResult(send.id, status, decision.reason)

        recorded: set[int] = set()
        if personal:
            from dripper.services import personal as steps
            from dripper.services.sending import keep_leases

            # Webhooks may take a while: the batch's leases are kept alive meanwhile.
            heartbeat = asyncio.create_task(keep_leases(self, [d.id for d in due]))
            try:
                made = await steps.handle(
                    self, self.renderer, personal, now, webhooks=self.webhooks, dry=dry
                )
            finally:
                heartbeat.cancel()
            results.update((r.id, r) for r in made)
            recorded.update(() if dry else (r.id for r in made))
        ready = self._render_all(to_send, results, now)
        if dry:
            for send, _data in ready:
                results[send.id] = SendResult(send.id, SendStatus.SENT, "dry run: not sent")
        elif ready:
            for result in await self._send_all(ready, now):
                results[result.id] = result
                recorded.add(result.id)
        ordered = [results[d.id] for d in due]
        for send, result in zip(due, ordered, strict=True):
            if send.kind != "email" and result.status is SendStatus.SENT:
                report.tasks += send.kind == "task"
                report.webhooks += send.kind == "webhook"
                continue
            _count(report, result)
            if result.status is SendStatus.SENT:
                report.deliveries.append(
                    (now, send.customer.email, send.campaign, send.step, send.message_id)
                )
        return ordered, recorded

    def _render(
        self, send: DueSend, campaign: Campaign, step: Any, edition: Edition | None, now: datetime
    ) -> bytes | SendResult:
        """The signed message, or the failure to record (a template error is the
        campaign's problem: failed with the reason, never a crash of the daemon)."""
        from dripper.errors import DripperError
        from dripper.store.deliveries import SendResult

        try:
            email = self.renderer.render(
                campaign,
                step,
                send.customer,
                now=now,
                message_id=send.message_id,
                variant=send.variant,
                edition=edition,
                event=send.event,
            )
        except DripperError as exc:
            # The delivery's id, never the address: a log outlives `forget` (issue 23).
            log.error(
                "render failed for %s (%s/%s): %s",
                delivery_of(send.message_id),
                send.campaign,
                send.step,
                without_addresses(str(exc)),
            )
            return SendResult(send.id, SendStatus.FAILED, f"render: {exc}")
        return email.mime

    def _render_all(
        self,
        to_send: Sequence[tuple[DueSend, Campaign, Any, Edition | None]],
        results: dict[int, SendResult],
        now: datetime,
    ) -> list[tuple[DueSend, bytes]]:
        """Render each email here and sign it in a worker thread: the RSA signature and
        the body's hash let go of the GIL, so email N is signed on the other core while
        N+1 is rendered (bench/README.md, issue 25). In order; a failure is a result."""
        signer = self.signer
        if signer is None:
            ready = []
            for send, campaign, step, edition in to_send:
                rendered = self._render(send, campaign, step, edition, now)
                if isinstance(rendered, bytes):
                    ready.append((send, rendered))
                else:
                    results[send.id] = rendered
            return ready
        if self._signing is None:
            from concurrent.futures import ThreadPoolExecutor

            self._signing = ThreadPoolExecutor(SIGNING_THREADS, thread_name_prefix="dkim")
        timestamp = int(now.timestamp())
        signing = []
        for send, campaign, step, edition in to_send:
            rendered = self._render(send, campaign, step, edition, now)
            if isinstance(rendered, bytes):
                signed = self._signing.submit(signer.sign, rendered, timestamp=timestamp)
                signing.append((send, signed))
            else:
                results[send.id] = rendered
        return [(send, future.result()) for send, future in signing]

    async def _send_all(
        self, ready: Sequence[tuple[DueSend, bytes]], now: datetime
    ) -> list[SendResult]:
        from dripper.services.sending import send_batch

        return await send_batch(self, ready, now)

def _webhook_client(config: Config) -> WebhookClient:
    from dripper.transport.webhook import WebhookClient

    hooks = config.webhooks
    return WebhookClient(
        allowed_hosts=hooks.allowed_hosts,
        secret=config.secret(hooks.secret_env),
        secret_env=hooks.secret_env,
        timeout=hooks.timeout,
        max_answer=hooks.max_answer,
    )


class _Editions:
    """Which edition each newsletter run used, read once per batch and campaign."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._runs: dict[str, dict[str, Any]] = {}

    def get(self, campaign: Campaign, occurrence: str) -> Edition | None:
        from dripper.store import campaign_state

        if campaign.name not in self._runs:
            with self.store.reading() as conn:
                state = campaign_state.load_state(conn, campaign.name)
            self._runs[campaign.name] = dict(state.get("runs", {}))
        slug = self._runs[campaign.name].get(occurrence)
        return campaign.edition(slug) if slug else None


def _count(report: Report, result: SendResult) -> None:
    if result.status is SendStatus.SENT:
        report.sent += 1
    elif result.status is SendStatus.SKIPPED:
        report.skipped += 1
    elif result.status is SendStatus.CANCELLED:
        report.cancelled += 1
    elif result.status is SendStatus.HELD:
        report.held += 1
    elif result.status is SendStatus.FAILED:
        report.failed += 1
    elif result.status is SendStatus.PLANNED:
        if result.outcome == "ambiguous":
            report.ambiguous += 1
        else:
            report.deferred += 1



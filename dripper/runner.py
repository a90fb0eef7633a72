"""The daemon's pass: plan, send, listen. `Runner` composes the three services
(`dripper.services`) over one store and one set of campaigns; `dripper run --once`, the
daemon's loop and `simulate` each call `run_once`.

It never reads the clock: every pass takes `now`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dripper.services.listening import Listener
from dripper.services.planning import Planner
from dripper.services.report import Report

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.render.renderer import Renderer
    from dripper.services.delivery import Sender
    from dripper.store import Store

__all__ = ["Report", "Runner"]
log = logging.getLogger("dripper.run")


class Runner:
    """The planner, the sender and the listener of one store and one set of campaigns.
    Planning alone (events, `plan`) needs no sender: pass one to send."""

    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        *,
        sender: Sender | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self.planner = Planner(config, store, self.campaigns)
        self.listener = Listener(config, store, self.campaigns, planner=self.planner)
        self._sender = sender

    def use(self, campaigns: Sequence[Campaign], renderer: Renderer) -> None:
        """Switch to another version of the project's campaigns and templates (dripper.live)
        between passes: planning and listening see the new campaigns, the sender renders
        with the new templates; its connections and what an outage left are kept."""
        mailbox_error = self.listener._mailbox_error
        self.campaigns = list(campaigns)
        self.planner = Planner(self.config, self.store, self.campaigns)
        self.listener = Listener(self.config, self.store, self.campaigns, planner=self.planner)
        self.listener._mailbox_error = mailbox_error
        if self._sender is not None:
            self._sender.use(self.campaigns, renderer)

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            raise RuntimeError("this runner was made for planning only: give it a sender")
        return self._sender

    async def run_once(self, now: datetime, *, stop: asyncio.Event | None = None) -> Report:
        """Plan, send what is due, take in what came back. `stop` (SIGTERM) is honoured
        between batches: a batch in flight is finished and recorded."""
        from dripper.services.digests import send_digests
        from dripper.services.signups import send_confirmations

        report = self.planner.plan(now)
        sender = self.sender
        # A new reader's confirmation first: it is what they are waiting for right now.
        report.confirmations += await send_confirmations(
            self.config,
            self.store,
            renderer=sender.renderer,
            transport=sender.transport,
            signer=sender.signer,
            now=now,
            limiter=sender.limiter,
        )
        report.add(await sender.send_due(now, stop=stop))
        # The people's morning digests of their tasks, after this pass made today's.
        report.digests += await send_digests(
            self.config,
            self.store,
            renderer=sender.renderer,
            transport=sender.transport,
            signer=sender.signer,
            now=now,
        )
        report.add(await self.listener.listen(now, transport=self.sender.transport))
        await self._refit(now, report)
        return report

    async def _refit(self, now: datetime, report: Report) -> None:
        """Once a day, the lifetime models fitted again (DESIGN 17), in a thread: a
        million customers take seconds, and the loop's leases must stay alive."""
        from dripper.services.predict import predict, refit_due

        if not refit_due(self.store, now=now):
            return
        found = await asyncio.to_thread(predict, self.store, self.config, now=now)
        if found.fitted:
            log.info("lifetime models fitted on %d buyer(s)", found.customers)
        else:
            log.info("lifetime models not fitted: %s", found.reason)

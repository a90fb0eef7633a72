"""The daemon's pass: plan, send, listen. `Runner` composes the three services
(`dripper.services`) over one store and one set of campaigns; `dripper run`, `simulate`,
the CLI's `event` and the Python API (`Runner(...).record_events`) all go through it.

It never reads the clock: every pass takes `now`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dripper.services.listening import Listener
from dripper.services.planning import Planner
from dripper.services.report import Progress, Report

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.dkim import DkimSigner
    from dripper.engine.model import EventDecisions
    from dripper.ratelimit import RateLimiter
    from dripper.render.renderer import Renderer
    from dripper.services.delivery import Sender
    from dripper.store import Store
    from dripper.store.ingest import NewEvent
    from dripper.store.records import EventRecord
    from dripper.transport.base import Transport

__all__ = ["Report", "Runner"]


class Runner:
    """One store, one set of campaigns, and the services that work on them. Sending needs
    a renderer and a transport; planning (`record_event(s)`, `plan`) needs neither."""

    def __init__(
        self,
        config: Config,
        store: Store,
        campaigns: Sequence[Campaign],
        *,
        renderer: Renderer | None = None,
        transport: Transport | None = None,
        owner: str | None = None,
        signer: DkimSigner | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """`signer`: DKIM (None: unsigned). `limiter`: the shared send rate (None: as fast
        as the transport's pool goes). `owner` names this daemon on its leases."""
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)
        self.renderer = renderer
        self.transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.planner = Planner(config, store, self.campaigns)
        self.listener = Listener(config, store, self.campaigns)
        self._sender: Sender | None = None
        self._signer = signer
        self._limiter = limiter

    @property
    def sender(self) -> Sender:
        """The delivery service (built on first use: planning alone never needs it)."""
        if self._sender is None:
            from dripper.services.delivery import Sender

            if self.renderer is None or self.transport is None:
                raise RuntimeError("sending needs a renderer and a transport")
            self._sender = Sender(
                self.config,
                self.store,
                self.campaigns,
                renderer=self.renderer,
                transport=self.transport,
                owner=self.owner,
                signer=self._signer,
                limiter=self._limiter,
            )
        return self._sender

    @property
    def progress(self) -> Progress:
        return self.sender.progress

    # --- planning ------------------------------------------------------------------------

    def record_event(
        self, email: str, type_: str, *, at: datetime, data: Mapping[str, Any], now: datetime
    ) -> tuple[Customer, EventRecord, EventDecisions]:
        """Store an event and everything it causes in one transaction (see Planner)."""
        return self.planner.record_event(email, type_, at=at, data=data, now=now)

    def record_events(
        self,
        items: Iterable[NewEvent],
        *,
        now: datetime,
        batch_size: int = 2000,
        workers: int | None = None,
    ) -> Report:
        """Store many events and plan what they cause, a batch per transaction (see
        Planner.record_events)."""
        return self.planner.record_events(
            items, now=now, batch_size=batch_size, workers=workers
        )

    def plan(self, now: datetime, *, force_scan: bool = False) -> Report:
        """Enroll whoever is due: date triggers, `when` triggers, schedule runs."""
        return self.planner.plan(now, force_scan=force_scan)

    # --- sending -------------------------------------------------------------------------

    async def send_due(self, now: datetime, *, stop: asyncio.Event | None = None) -> Report:
        """Send what is due now, batch by batch, until none is left or `stop` is set."""
        return await self.sender.send_due(now, stop=stop)

    async def dry_run(self, now: datetime) -> Report:
        """What `send_due` would send now, rendered but neither sent nor recorded."""
        return await self.sender.dry_run(now)

    # --- one whole pass --------------------------------------------------------------------

    async def run_once(self, now: datetime, *, stop: asyncio.Event | None = None) -> Report:
        """Plan, send what is due, take in what came back."""
        report = self.plan(now)
        report.add(await self.send_due(now, stop=stop))
        report.add(self.listener.listen(now))
        return report

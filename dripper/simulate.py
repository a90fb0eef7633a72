"""`dripper simulate`: the real planner and runner on a throwaway copy of the state.

The copy is a temporary SQLite file (from SQLite or PostgreSQL alike); emails go to an
in-memory transport. Nothing in the real database changes and nothing is sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.customers.model import CustomerData
    from dripper.store import Store

STEP = timedelta(hours=6)  # longest jump between passes: date triggers and runs are noticed


@dataclass(frozen=True)
class SimulatedSend:
    at: datetime
    to: str
    campaign: str
    step: str
    subject: str


def copy_state(source: Store, folder: Path) -> Store:
    """Every table of `source`, copied into a fresh SQLite database in `folder`."""
    from dripper.store import open_store

    target = open_store(f"sqlite:///{folder / 'simulation.db'}")
    target.ensure_schema()
    source.copy_into(target)
    return target


async def simulate(
    config: Config,
    store: Store,
    campaigns: Sequence[Campaign],
    *,
    now: datetime,
    days: int,
    warnings: list[str],
) -> list[SimulatedSend]:
    """What would be sent to the customers of `store` in the next `days` days."""
    with tempfile.TemporaryDirectory(prefix="dripper-simulate-") as folder:
        copy = copy_state(store, Path(folder))
        try:
            return await _timeline(config, copy, campaigns, now=now, days=days, warnings=warnings)
        finally:
            copy.close()


async def simulate_samples(
    config: Config,
    campaigns: Sequence[Campaign],
    samples: Sequence[CustomerData],
    *,
    now: datetime,
    days: int,
    warnings: list[str],
) -> list[SimulatedSend]:
    """What `samples` would be sent in the next `days` days if each made a first purchase
    now (what `dripper check` asks, with no database of its own)."""
    from dripper.services.planning import Planner
    from dripper.store import open_store
    from dripper.store.ingest import NewEvent

    with tempfile.TemporaryDirectory(prefix="dripper-check-") as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'samples.db'}")
        try:
            store.ensure_schema()
            store.upsert_customers(samples, now=now)
            purchases = [NewEvent(s.email, "purchase", now, {"amount": "24.50"}) for s in samples]
            Planner(config, store, campaigns).record_events(purchases, now=now)
            return await _timeline(config, store, campaigns, now=now, days=days, warnings=warnings)
        finally:
            store.close()


async def _timeline(
    config: Config,
    store: Store,
    campaigns: Sequence[Campaign],
    *,
    now: datetime,
    days: int,
    warnings: list[str],
) -> list[SimulatedSend]:
    """The real runner, pass after pass over `days`, on a store that may be changed."""
    from dripper.render.renderer import Renderer
    from dripper.runner import Runner
    from dripper.services.delivery import Sender
    from dripper.store import enrollments
    from dripper.transport.memory import MemoryTransport
    from dripper.transport.webhook import WebhookClient

    transport = MemoryTransport()
    sends: list[SimulatedSend] = []
    sender = Sender(
        config,
        store,
        campaigns,
        renderer=Renderer(config, preview=True),
        transport=transport,
        owner="simulate",
        webhooks=WebhookClient(
            allowed_hosts=(), secret=None, secret_env="", timeout=1, max_answer=1, simulated=True
        ),
    )
    runner = Runner(config, store, campaigns, sender=sender)
    end = now + timedelta(days=days)
    moment = now
    parser = BytesHeaderParser(policy=default_policy)
    while moment <= end:
        report = await runner.run_once(moment)
        warnings += report.warnings
        by_id = {e.message_id: e for e in transport.sent}
        for at, to, campaign, step, message_id in report.deliveries:
            envelope = by_id.get(message_id)
            subject = (
                str(parser.parsebytes(envelope.data).get("Subject", ""))
                if envelope is not None
                else ""
            )
            sends.append(SimulatedSend(at, to, campaign, step, subject))
        transport.sent.clear()
        with store.reading() as conn:
            upcoming = enrollments.next_due(conn)
        jump = moment + STEP
        if upcoming is not None and moment < upcoming < jump:
            jump = upcoming
        moment = jump
    return sends

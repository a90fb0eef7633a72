"""Listening: what comes back in (tracking hits from `dripper serve`, replies, bounces and
complaints by mail), events and suppressions out.

The seam the daemon's pass already calls: `dripper serve` and the inbound-mail paths fill
it. Today a pass hears nothing, so `listen` reports nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dripper.services.report import Report

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.store import Store


class Listener:
    """Takes in what customers and their mail servers send back."""

    def __init__(self, config: Config, store: Store, campaigns: Sequence[Campaign]) -> None:
        self.config = config
        self.store = store
        self.campaigns = list(campaigns)

    def listen(self, now: datetime) -> Report:
        """One pass over what came back since the last one."""
        return Report()

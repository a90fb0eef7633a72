"""Pacing sends to `[transport] rate_per_second`, shared through the database.

`RateLimiter.wait()` is awaited before each send. Slots are reserved from the store in
blocks of about a quarter second's worth (see `dripper.store.throttle`), then handed out
`1/rate` apart; a daemon that stops early leaves at most one block unused.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dripper.store import Store


class RateLimiter:
    def __init__(self, store: Store, rate: float) -> None:
        self.store = store
        self.rate = rate
        self.block = max(1, math.ceil(rate / 4))
        self._slots: list[float] = []  # monotonic times at which reserved slots open
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            if not self._slots:
                self._slots = self._reserve()
            opens = self._slots.pop(0)
        delay = opens - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _reserve(self) -> list[float]:
        offset = self.store.reserve_send_slots(self.block, self.rate)
        start = time.monotonic() + offset
        return [start + i / self.rate for i in range(self.block)]

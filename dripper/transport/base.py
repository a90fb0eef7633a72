"""The transport interface and the vocabulary of what happened to a send (DESIGN 7).

A transport does one thing: `send(envelope) -> Outcome`. It never raises for a delivery
problem; the outcome says what happened so the caller records it and decides (retry,
suppress, pause). Exceptions are for programming errors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The outcomes are the delivery policy's vocabulary: the pure core decides on them.
from dripper.engine.delivery import Outcome, OutcomeKind

__all__ = ["Envelope", "Outcome", "OutcomeKind", "Transport"]


@dataclass(frozen=True)
class Envelope:
    message_id: str  # without angle brackets; the same on every retry of one delivery
    sender: str  # envelope sender (MAIL FROM)
    recipient: str  # one validated address (RCPT TO)
    data: bytes  # the whole message, CRLF line endings


class Transport(Protocol):
    """Sends one email. Implementations: file (default), memory (tests, --dry-run), smtp."""

    name: str

    async def send(self, envelope: Envelope) -> Outcome: ...

    async def close(self) -> None: ...

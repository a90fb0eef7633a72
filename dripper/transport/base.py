"""The transport interface and the vocabulary of what happened to a send (DESIGN 7).

A transport does one thing: `send(envelope) -> Outcome`. It never raises for a delivery
problem; the outcome says what happened so the caller records it and decides (retry,
suppress, pause). Exceptions are for programming errors only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class OutcomeKind(enum.StrEnum):
    SENT = "sent"  # 2xx to the final dot, or written to the outbox folder
    DEFERRED = "deferred"  # 4xx, or the line dropped before the final dot: retry later
    FAILED = "failed"  # 5xx: permanent; never retried
    AMBIGUOUS = "ambiguous"  # the line dropped after the final dot: possibly delivered


@dataclass(frozen=True)
class Envelope:
    message_id: str  # without angle brackets; the same on every retry of one delivery
    sender: str  # envelope sender (MAIL FROM)
    recipient: str  # one validated address (RCPT TO)
    data: bytes  # the whole message, CRLF line endings


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    code: int | None = None  # the SMTP reply code, when there was one
    enhanced: str | None = None  # e.g. "5.1.1"
    reply: str = ""  # the server's words, or what went wrong

    @property
    def suppresses(self) -> bool:
        """5.1.x: the address does not exist; never send to it again."""
        return self.kind is OutcomeKind.FAILED and (self.enhanced or "").startswith("5.1.")

    @property
    def is_policy(self) -> bool:
        """5.7.x: refused by policy (content, reputation): not the customer's fault."""
        return self.kind is OutcomeKind.FAILED and (self.enhanced or "").startswith("5.7.")

    def __str__(self) -> str:
        code = " ".join(p for p in (str(self.code or ""), self.enhanced or "") if p)
        return f"{self.kind.value}: {code} {self.reply}".replace("  ", " ").strip()


class Transport(Protocol):
    """Sends one email. Implementations: file (default), memory (tests, --dry-run), smtp."""

    name: str

    async def send(self, envelope: Envelope) -> Outcome: ...

    async def close(self) -> None: ...

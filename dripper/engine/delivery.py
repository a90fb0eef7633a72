"""The delivery policy: what becomes of a send once the transport has answered (README,
"What happens to each send"). Pure: the send's history, the outcome and the settings in,
a decision out; `now` is an argument and nothing here touches a database or a socket.

    2xx                           sent
    4xx / line lost before dot    retry after the next backoff delay, until give-up: failed
    5xx                           failed, never retried
    5.1.x                         ... and the address is suppressed for good
    5.7.x (policy)                ... the customer is not suppressed; counts towards a pause
    lost after the final dot      ambiguous: retried with the same Message-ID, until give-up
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dripper.engine.model import SendStatus


class OutcomeKind(enum.StrEnum):
    """What the transport says happened (the vocabulary of `dripper.transport.base`)."""

    SENT = "sent"  # 2xx to the final dot, or written to the outbox folder
    DEFERRED = "deferred"  # 4xx, or the line dropped before the final dot: retry later
    FAILED = "failed"  # 5xx: permanent; never retried
    AMBIGUOUS = "ambiguous"  # the line dropped after the final dot: possibly delivered


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


@dataclass(frozen=True)
class RetryPolicy:
    """`[sending] retry` (the last delay repeats) and `give_up_after`."""

    delays: Sequence[timedelta]
    give_up_after: timedelta


class PolicyEffect(enum.Enum):
    """What an outcome does to the campaign's run of policy rejections."""

    NONE = "none"  # no effect (deferred, ambiguous)
    HIT = "hit"  # a 5.7.x: one more towards `pause_after_policy`
    RESET = "reset"  # delivered: the run of rejections is over


@dataclass(frozen=True)
class DeliveryDecision:
    """The next state of a send after one attempt."""

    status: SendStatus  # SENT, FAILED, or PLANNED (to be retried at `retry_at`)
    reason: str | None = None
    retry_at: datetime | None = None
    suppress: bool = False  # the address does not exist: suppress it (reason: bounced)
    policy: PolicyEffect = PolicyEffect.NONE


def decide(
    outcome: Outcome,
    *,
    attempts: int,
    due_at: datetime,
    policy: RetryPolicy,
    now: datetime,
) -> DeliveryDecision:
    """The decision for a send that has made `attempts` attempts before this one, was due
    at `due_at`, and got `outcome` at `now`."""
    if outcome.kind is OutcomeKind.SENT:
        return DeliveryDecision(SendStatus.SENT, policy=PolicyEffect.RESET)
    if outcome.kind is OutcomeKind.FAILED:
        return DeliveryDecision(
            SendStatus.FAILED,
            str(outcome),
            suppress=outcome.suppresses,
            policy=PolicyEffect.HIT if outcome.is_policy else PolicyEffect.NONE,
        )
    # Deferred, or ambiguous (retried with the same Message-ID), until give-up.
    if now - due_at >= policy.give_up_after:
        return DeliveryDecision(
            SendStatus.FAILED, f"gave up after {policy.give_up_after}: {outcome}"
        )
    return DeliveryDecision(
        SendStatus.PLANNED, str(outcome), retry_at=now + retry_delay(policy.delays, attempts)
    )


def retry_delay(delays: Sequence[timedelta], attempts: int) -> timedelta:
    """The wait after the attempt that follows `attempts` earlier ones; the last repeats."""
    return delays[min(attempts, len(delays) - 1)]


def should_pause(hits: int, limit: int) -> bool:
    """A campaign pauses when its run of policy rejections reaches `limit`."""
    return hits >= limit


def pause_reason(hits: int, outcome: Outcome, campaign: str) -> str:
    """Why a campaign was paused, and how to resume it."""
    last = f"{outcome.code} {outcome.enhanced} {outcome.reply}".rstrip()
    return (
        f"paused after {hits} policy rejections (last: {last}): fix the content or the "
        f"sending reputation, then `dripper resume {campaign}`"
    )

"""The delivery policy, row by row of the README's "What happens to each send" table: an
outcome and a send's history in, the next state out. No database, no transport, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dripper.engine.delivery import (
    DeliveryDecision,
    Outcome,
    OutcomeKind,
    PolicyEffect,
    RetryPolicy,
    decide,
    pause_reason,
    retry_delay,
    should_pause,
)
from dripper.engine.model import SendStatus

DUE = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)),
    timedelta(days=3),
)
M, H = timedelta(minutes=1), timedelta(hours=1)

SENT = Outcome(OutcomeKind.SENT, 250, "2.0.0", "queued as 1A2B")
DEFERRED_4XX = Outcome(OutcomeKind.DEFERRED, 451, "4.3.0", "try again later")
DROPPED_BEFORE_DOT = Outcome(OutcomeKind.DEFERRED, None, None, "connection lost during DATA")
FAILED_5XX = Outcome(OutcomeKind.FAILED, 554, "5.0.0", "transaction failed")
NO_SUCH_USER = Outcome(OutcomeKind.FAILED, 550, "5.1.1", "no such user")
POLICY_REJECTION = Outcome(OutcomeKind.FAILED, 554, "5.7.1", "message refused as spam")
AMBIGUOUS = Outcome(OutcomeKind.AMBIGUOUS, None, None, "no reply to the final dot")

# (row of the README table, outcome, attempts before, minutes since due) -> decision
TABLE = [
    ("2xx to the final dot: sent", SENT, 0, 0,
     DeliveryDecision(SendStatus.SENT, policy=PolicyEffect.RESET)),
    ("4xx: retried after 5m", DEFERRED_4XX, 0, 0,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 5 * M)),
    ("4xx, second attempt: after 30m", DEFERRED_4XX, 1, 5,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 35 * M)),
    ("4xx, third attempt: after 2h", DEFERRED_4XX, 2, 35,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 155 * M)),
    ("4xx, fourth attempt: after 6h", DEFERRED_4XX, 3, 155,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 155 * M + 6 * H)),
    ("4xx, later attempts: every 6h", DEFERRED_4XX, 9, 24 * 60,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 30 * H)),
    ("line dropped before the dot: retried", DROPPED_BEFORE_DOT, 0, 0,
     DeliveryDecision(SendStatus.PLANNED, str(DROPPED_BEFORE_DOT), retry_at=DUE + 5 * M)),
    ("4xx past give_up_after (3 days): failed", DEFERRED_4XX, 12, 3 * 24 * 60,
     DeliveryDecision(SendStatus.FAILED, f"gave up after 3 days, 0:00:00: {DEFERRED_4XX}")),
    ("4xx just before give-up: still retried", DEFERRED_4XX, 12, 3 * 24 * 60 - 1,
     DeliveryDecision(SendStatus.PLANNED, str(DEFERRED_4XX), retry_at=DUE + 78 * H - M)),
    ("5xx: failed, never retried", FAILED_5XX, 0, 0,
     DeliveryDecision(SendStatus.FAILED, str(FAILED_5XX))),
    ("5.1.x: failed and suppressed for good", NO_SUCH_USER, 0, 0,
     DeliveryDecision(SendStatus.FAILED, str(NO_SUCH_USER), suppress=True)),
    ("5.7.x: failed, not suppressed, one towards a pause", POLICY_REJECTION, 0, 0,
     DeliveryDecision(SendStatus.FAILED, str(POLICY_REJECTION), policy=PolicyEffect.HIT)),
    ("dropped after the dot: ambiguous, retried", AMBIGUOUS, 0, 0,
     DeliveryDecision(SendStatus.PLANNED, str(AMBIGUOUS), retry_at=DUE + 5 * M)),
    ("ambiguous past give-up: failed", AMBIGUOUS, 4, 3 * 24 * 60,
     DeliveryDecision(SendStatus.FAILED, f"gave up after 3 days, 0:00:00: {AMBIGUOUS}")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "attempts", "minutes", "expected"),
    [pytest.param(o, a, m, d, id=row) for row, o, a, m, d in TABLE],
)
def test_each_row_of_the_table(
    outcome: Outcome, attempts: int, minutes: int, expected: DeliveryDecision
) -> None:
    """The decision for this outcome, history and time is exactly the table's."""
    now = DUE + timedelta(minutes=minutes)
    assert decide(outcome, attempts=attempts, due_at=DUE, policy=POLICY, now=now) == expected


def test_the_last_delay_repeats() -> None:
    """Past the list, every retry waits the last delay."""
    assert [retry_delay(POLICY.delays, n) for n in range(6)] == [
        5 * M, 30 * M, 2 * H, 6 * H, 6 * H, 6 * H
    ]


def test_a_campaign_pauses_when_its_run_reaches_the_limit() -> None:
    """Four rejections in a row do not pause at a limit of five; the fifth does."""
    assert not should_pause(4, 5)
    assert should_pause(5, 5)
    reason = pause_reason(5, POLICY_REJECTION, "welcome")
    assert reason.startswith("paused after 5 policy rejections (last: 554 5.7.1 message refused")
    assert reason.endswith("then `dripper resume welcome`")

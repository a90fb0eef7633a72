"""An in-memory transport that ships in the package: for tests, `--dry-run` and
`dripper simulate`. It can be told what to answer for an address."""

from __future__ import annotations

from collections.abc import Mapping

from dripper.transport.base import Envelope, Outcome, OutcomeKind


class MemoryTransport:
    name = "memory"

    def __init__(self, answers: Mapping[str, Outcome] | None = None) -> None:
        self.sent: list[Envelope] = []
        self.answers = dict(answers or {})

    async def send(self, envelope: Envelope) -> Outcome:
        outcome = self.answers.get(envelope.recipient, Outcome(OutcomeKind.SENT, 250, reply="ok"))
        if outcome.kind in (OutcomeKind.SENT, OutcomeKind.AMBIGUOUS):
            self.sent.append(envelope)
        return outcome

    async def close(self) -> None:
        return None

"""What a pass did: the counts every service adds to, shown by the CLI and collected by
`simulate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

_COUNTS = (
    "enrolled",
    "sent",
    "skipped",
    "cancelled",
    "deferred",
    "failed",
    "ambiguous",
    "inbound",
    "forwarded",
    "recorded",
    "duplicates",
    "confirmations",
    "tasks",
    "webhooks",
    "digests",
    "held",
)


@dataclass
class Report:
    """What one pass did; the CLI prints it, `simulate` collects it."""

    enrolled: int = 0
    sent: int = 0
    skipped: int = 0
    cancelled: int = 0
    deferred: int = 0
    failed: int = 0
    ambiguous: int = 0
    inbound: int = 0  # messages taken in from the reply mailbox
    forwarded: int = 0  # replies forwarded to [replies] notify
    recorded: int = 0  # events stored (bulk ingestion)
    duplicates: int = 0  # events whose type and id were recorded before: nothing changed
    confirmations: int = 0  # signups' confirmation emails sent (DESIGN 13)
    tasks: int = 0  # tasks made for a person (DESIGN 16)
    webhooks: int = 0  # webhook steps the receiver accepted
    digests: int = 0  # the people's morning digests of their tasks
    held: int = 0  # steps of held-out enrollments marked held (`holdout:`, DESIGN 17)
    mailbox: str | None = None  # the reply mailbox's trouble, if it has any
    warnings: list[str] = field(default_factory=list)
    deliveries: list[tuple[datetime, str, str, str, str]] = field(default_factory=list)

    def add(self, other: Report) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.mailbox = other.mailbox or self.mailbox
        self.warnings += other.warnings
        self.deliveries += other.deliveries

    def summary(self, *, dry_run: bool = False) -> str:
        if dry_run:  # nothing was planned or sent: say what would have been
            parts = [f"would send {self.sent}"]
        else:
            parts = [f"{self.enrolled} enrolled", f"{self.sent} sent"]
        for name in ("held", "deferred", "skipped", "cancelled", "failed", "ambiguous"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        for name in ("recorded", "duplicates"):  # events taken in (bulk)
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        if self.inbound:
            parts.append(f"{self.inbound} inbound")
        if self.forwarded:
            parts.append(f"{self.forwarded} forwarded")
        if self.confirmations:
            parts.append(f"{self.confirmations} signup confirmation(s)")
        for name, label in (
            ("tasks", "task(s)"),
            ("webhooks", "webhook(s)"),
            ("digests", "digest(s)"),
        ):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {label}")
        if self.mailbox:
            parts.append(f"mailbox: {self.mailbox}")
        return ", ".join(parts)


@dataclass
class Progress:
    """Live counters for the status line (updated as each email goes out)."""

    sent: int = 0

"""The default transport: each email is one .eml file; nothing leaves the machine."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dripper.transport.base import Envelope, Outcome, OutcomeKind

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class FileTransport:
    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, message_id: str) -> Path:
        """One file per delivery, named by its Message-ID: a retry rewrites the same file,
        so a delivery can never appear twice in the folder."""
        return self.folder / f"{_UNSAFE.sub('_', message_id)}.eml"

    async def send(self, envelope: Envelope) -> Outcome:
        target = self.path_for(envelope.message_id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".eml.part")
            with partial.open("wb") as handle:
                handle.write(envelope.data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)  # atomic: a reader never sees half an email
        except OSError as exc:
            return Outcome(OutcomeKind.DEFERRED, reply=f"cannot write {target}: {exc.strerror}")
        return Outcome(OutcomeKind.SENT, reply=f"written to {target}")

    async def close(self) -> None:
        return None

    def remove(self, message_ids: list[str]) -> int:
        """Delete the files of these deliveries (`forget`: a customer's emails must not
        outlive them in the folder); returns how many were there."""
        removed = 0
        for message_id in message_ids:
            target = self.path_for(message_id)
            for path in (target, target.with_suffix(".eml.part")):
                try:
                    path.unlink()
                    removed += path == target
                except FileNotFoundError:
                    continue
        return removed

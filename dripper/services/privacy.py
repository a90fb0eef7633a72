"""Forgetting a customer everywhere dripper keeps them: the database (every row, the
address hash kept suppressed; on SQLite the files checkpointed), and the file transport's
folder (their `.eml` files). What the daemon logs names deliveries, never addresses, so
no log line needs forgetting."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dripper.config import Config
    from dripper.store import Store


def forget(config: Config, store: Store, email: str, *, now: datetime) -> bool:
    """Erase `email` (normalised) and everything about them; False when nothing was
    stored. The files go after the rows: a crash between leaves files that a second
    `forget` cannot find any more, so their names are read first and removed last only
    once the rows are gone."""
    message_ids = store.message_ids_of(email)
    if not store.forget(email, now=now):
        return False
    if config.transport.kind == "file":
        from dripper.transport.file import FileTransport

        FileTransport(Path(config.transport.path)).remove(message_ids)
    return True

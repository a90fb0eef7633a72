"""The values a polled mailbox hands to the poller, and its one error, free of any IMAP
library so the poller and the store can use them without importing one.

    MailboxState   where reading a folder got to: (uidvalidity, last_uid), kept in the database
    NewMail        one poll: the state to start from, whether the folder began over, the
                   new UIDs, and (iterated) their Batches, fetched one at a time
    Batch          messages fetched together, the too-large ones skipped among them, and the
                   state to store once every message of the batch is recorded
    MailboxError   anything that went wrong talking to the server, as one line; `.fault` says
                   which kind (for the status field), `.where` the server's host:port
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dripper.errors import DripperError

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # a bigger message is skipped, never downloaded
BATCH_BYTES = 32 * 1024 * 1024  # a batch holds at most this much (or one message)


@dataclass(frozen=True, order=True)
class MailboxState:
    """How far a folder has been read: every message with a UID up to `last_uid` under this
    `uidvalidity` is recorded. UIDs only mean something within one UIDVALIDITY."""

    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class FetchedMessage:
    """One message as the server stores it, byte for byte."""

    uid: int
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class TooLarge:
    """A message over `max_bytes`, skipped without downloading it: left in the folder for a
    person, reported so someone knows."""

    uid: int
    size: int


@dataclass(frozen=True)
class Batch:
    """Messages fetched together, in UID order. `state` covers every UID up to the batch's
    last (the too-large ones and any that vanished meanwhile included): store it only after
    each of `messages` is recorded."""

    messages: tuple[FetchedMessage, ...]
    too_large: tuple[TooLarge, ...]
    state: MailboxState


@dataclass(frozen=True)
class NewMail:
    """The result of one poll of a folder, before any message is downloaded.

    `state` is where this poll starts; it may be stored at once (it only names the folder's
    current UIDVALIDITY, so a folder that began over is not reported again on every poll).
    `restarted` is True when the stored UIDVALIDITY differs from the folder's: every message
    of the folder is read again (recording by Message-ID makes that harmless). Iterating
    fetches the batches one at a time over the open connection, so it must happen while the
    mailbox is open; a MailboxError may come from any step of it.
    """

    state: MailboxState
    restarted: bool
    uids: tuple[int, ...]
    _batches: Callable[[], Iterator[Batch]] = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[Batch]:
        return self._batches()


class MailboxFault(enum.StrEnum):
    """What kind of trouble a MailboxError is; the poller shows it in its status."""

    UNREACHABLE = "unreachable"  # refused, unknown host, no route
    TIMEOUT = "timeout"  # the server stopped answering
    TLS = "tls"  # handshake or certificate failed, or STARTTLS not offered
    LOGIN = "login"  # the server refused the credentials
    DROPPED = "dropped"  # the connection ended in the middle of a session
    FOLDER = "folder"  # the folder to read, or to move to, is missing or cannot be made
    SERVER = "server"  # the server refused a command or broke the protocol


class MailboxError(DripperError):
    """A mailbox that cannot be read right now, as one line naming the server and what to
    do. It never carries the password; the connection it came from is closed."""

    def __init__(self, message: str, *, fault: MailboxFault, where: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.where = where

"""The IMAP side of the reply poller (DESIGN 8, issue 12): log in, read the messages that
arrived since the last poll, and, only when `[replies] processed_folder` says so, move them.

    with ImapMailbox.from_config(config) as mailbox:
        new = mailbox.fetch_new(stored)        # SELECT + UID SEARCH; nothing downloaded yet
        store(new.state)                       # the folder's current UIDVALIDITY
        for batch in new:                      # RFC822.SIZE, then BODY.PEEK[], per batch
            record(batch.messages)             # once per Message-ID
            mailbox.move_processed(m.uid for m in batch.messages)  # no-op without the setting
            store(batch.state)                 # only now is this batch behind us

Nothing is ever skipped: a batch's state is stored after its messages are recorded, so when
the connection breaks between batches, the next poll starts after the last batch recorded. A
batch recorded but whose state was not stored is read again, and deduplicated.

A person's mail is left alone unless processed_folder is set: the folder is opened read-only
(EXAMINE) and bodies are fetched with BODY.PEEK[], which, unlike BODY[] or RFC822, does not
set \\Seen. Moving uses MOVE, or COPY + \\Deleted + UID EXPUNGE of exactly those UIDs; never
a plain EXPUNGE, which would also remove what someone else marked deleted.

Synchronous, like imapclient: the daemon runs it in a worker thread. Every socket operation
is bounded by `timeout`, so a hung server costs one timeout, not the daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import os
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from dripper.errors import ConfigError
from dripper.inbound.imap_errors import classify, describe, explain
from dripper.inbound.imap_settings import ImapSettings
from dripper.inbound.mailbox import (
    BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Batch,
    FetchedMessage,
    MailboxError,
    MailboxFault,
    MailboxState,
    NewMail,
    TooLarge,
)

if TYPE_CHECKING:
    from dripper.config import Config

class ImapMailbox:
    """One logged-in connection to the mailbox; a context manager (or connect()/close())."""

    def __init__(
        self,
        settings: ImapSettings,
        password: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._password = password
        if ssl_context is None and settings.security != "none":
            ssl_context = ssl.create_default_context(
                cafile=os.fspath(settings.ca_file) if settings.ca_file else None
            )
        self._ssl_context = ssl_context
        self._client: Any = None  # imapclient.IMAPClient once connected
        self._selected = False

    @classmethod
    def from_config(cls, config: Config, env: Mapping[str, str] | None = None) -> ImapMailbox:
        settings = ImapSettings.from_config(dataclasses.asdict(config.replies))
        env = os.environ if env is None else env
        password = env.get(settings.password_env, "")
        if not password:
            raise ConfigError(
                f"[replies] imap_host is set but the environment variable "
                f"{settings.password_env} (password_env) is empty: export the IMAP password there"
            )
        return cls(settings, password)

    # --- the connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, secure the line as `security` says, log in, and make sure the processed
        folder exists. Raises MailboxError."""
        if self._client is not None:
            return
        s = self.settings
        with self._talking("connecting", connecting=True):
            client = IMAPClient(
                s.host,
                s.port,
                ssl=s.security == "tls",
                ssl_context=self._ssl_context,
                timeout=SocketTimeout(connect=s.timeout, read=s.timeout),
            )
        # imapclient switches on imaplib's protocol trace, which would put the LOGIN line
        # (the password) and people's mail into any DEBUG log.
        client._imap.debug = 0
        self._client = client
        with self._talking("securing the connection with STARTTLS"):
            if s.security == "starttls":
                if not client.has_capability("STARTTLS"):
                    self._fail(
                        MailboxFault.TLS,
                        f"the IMAP server {s.where} does not offer STARTTLS: refusing to log in "
                        'in the clear (security = "starttls"); use security = "tls" with the '
                        "server's TLS port, or enable STARTTLS on the server",
                    )
                client.starttls(self._ssl_context)
        with self._talking("logging in"):
            client.login(s.username, self._password)
        if s.processed_folder:
            with self._talking(
                f"creating the folder {s.processed_folder!r}", folder=s.processed_folder
            ):
                if not client.folder_exists(s.processed_folder):
                    client.create_folder(s.processed_folder)

    def close(self) -> None:
        """Log out; never raises (the connection may already be gone)."""
        client, self._client = self._client, None
        self._selected = False
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def __enter__(self) -> ImapMailbox:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading --------------------------------------------------------------------------------

    def fetch_new(
        self,
        state: MailboxState | None,
        *,
        batch: int = 50,
        max_bytes: int = MAX_MESSAGE_BYTES,
        batch_bytes: int = BATCH_BYTES,
    ) -> NewMail:
        """The messages after `state` (all of them if None or the UIDVALIDITY changed). The
        folder is selected read-only unless processed_folder is set. See NewMail and Batch
        for what may be stored when."""
        if batch < 1 or max_bytes < 1:
            raise ValueError("batch and max_bytes must be positive")
        client = self._connected()
        folder = self.settings.folder
        with self._talking(f"opening the folder {folder!r}", folder=folder):
            selected = client.select_folder(folder, readonly=not self.settings.processed_folder)
        self._selected = True
        uidvalidity = selected.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            self._fail(
                MailboxFault.SERVER,
                f"the IMAP server {self.settings.where} gave no UIDVALIDITY for {folder!r}: "
                "it cannot be polled incrementally",
            )
        restarted = state is not None and state.uidvalidity != uidvalidity
        after = state.last_uid if state is not None and not restarted else 0
        uidnext = selected.get(b"UIDNEXT")
        uids: list[int] = []
        if not (isinstance(uidnext, int) and uidnext <= after + 1):
            with self._talking(f"searching {folder!r}"):
                found = client.search(["UID", f"{after + 1}:*"])
            # `N:*` always matches the highest UID, even when that is below N.
            uids = sorted(int(uid) for uid in found if int(uid) > after)
        return NewMail(
            state=MailboxState(uidvalidity, after),
            restarted=restarted,
            uids=tuple(uids),
            _batches=lambda: self._batches(uidvalidity, uids, batch, max_bytes, batch_bytes),
        )

    def _batches(
        self, uidvalidity: int, uids: Sequence[int], batch: int, max_bytes: int, batch_bytes: int
    ) -> Iterator[Batch]:
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            client = self._connected()
            with self._talking("reading message sizes"):
                found = client.fetch(chunk, ["RFC822.SIZE"])
            # A UID missing from the answer was expunged since the search: nothing to read.
            sizes = {uid: _size(found.get(uid)) for uid in chunk}
            group: list[int] = []
            group_bytes = 0  # of the group's messages that will be downloaded
            for uid in chunk:
                size = sizes[uid]
                if size is not None and size <= max_bytes:
                    if group_bytes and group_bytes + size > batch_bytes:
                        yield self._download(uidvalidity, group, sizes, max_bytes)
                        group, group_bytes = [], 0
                    group_bytes += size
                group.append(uid)
            if group:
                yield self._download(uidvalidity, group, sizes, max_bytes)

    def _download(
        self,
        uidvalidity: int,
        group: Sequence[int],
        sizes: Mapping[int, int | None],
        max_bytes: int,
    ) -> Batch:
        """One batch: the bodies of the group's messages that fit, in UID order."""
        too_large = [
            TooLarge(uid, size)
            for uid in group
            if (size := sizes[uid]) is not None and size > max_bytes
        ]
        wanted = [uid for uid in group if (size := sizes[uid]) is not None and size <= max_bytes]
        messages: list[FetchedMessage] = []
        if wanted:
            client = self._connected()
            # A partial fetch bounds what is read even from a server that misreports sizes.
            with self._talking(f"fetching {len(wanted)} message(s)"):
                found = client.fetch(wanted, [f"BODY.PEEK[]<0.{max_bytes + 1}>"])
            for uid in wanted:
                raw = _body(found.get(uid))
                if raw is None:
                    continue  # expunged meanwhile
                if len(raw) > max_bytes:
                    too_large.append(TooLarge(uid, len(raw)))
                    continue
                messages.append(FetchedMessage(uid, raw))
        too_large.sort(key=lambda item: item.uid)
        return Batch(tuple(messages), tuple(too_large), MailboxState(uidvalidity, group[-1]))

    # --- the one change ever made: with processed_folder only ---------------------------------

    def move_processed(self, uids: Iterable[int]) -> None:
        """Move recorded messages to processed_folder; does nothing without that setting.
        Call after fetch_new, before storing the batch's state."""
        target = self.settings.processed_folder
        wanted = sorted(set(uids))
        if not target or not wanted:
            return
        client = self._connected()
        if not self._selected:
            raise RuntimeError("move_processed() before fetch_new(): no folder is selected")
        with self._talking(f"moving {len(wanted)} message(s) to {target!r}", folder=target):
            if client.has_capability("MOVE"):
                client.move(wanted, target)
                return
            client.copy(wanted, target)
            client.add_flags(wanted, [b"\\Deleted"], silent=True)
            # Without UIDPLUS the originals stay behind flagged \Deleted: removing them would
            # take a plain EXPUNGE, which also removes whatever others marked deleted.
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(wanted)

    # --- errors -------------------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._client is None:
            self._fail(
                MailboxFault.DROPPED,
                f"not connected to the IMAP server {self.settings.where} "
                "(closed, or lost after an earlier error): connect again",
            )
        return self._client

    def _fail(self, fault: MailboxFault, message: str) -> NoReturn:
        """Close the connection (it cannot be trusted after a failure) and raise."""
        self._discard()
        if self._password:
            message = message.replace(self._password, "***")
        raise MailboxError(message, fault=fault, where=self.settings.where) from None

    def _discard(self) -> None:
        client, self._client = self._client, None
        self._selected = False
        if client is not None:
            # No LOGOUT: after a timeout that would wait out another one.
            with contextlib.suppress(Exception):
                client.shutdown()

    @contextlib.contextmanager
    def _talking(
        self, doing: str, *, connecting: bool = False, folder: str | None = None
    ) -> Iterator[None]:
        """Turn whatever the IMAP library or the socket raises into one MailboxError."""
        s = self.settings
        try:
            yield
        except MailboxError:
            raise
        except LoginError as exc:
            self._fail(
                MailboxFault.LOGIN,
                f"IMAP login failed for {s.username}@{s.where}: {describe(exc)}; check "
                f"[replies] username and the password in {s.password_env}",
            )
        except (imaplib.IMAP4.error, OSError) as exc:
            fault, reason = classify(exc, connecting=connecting)
            key = None
            if folder is not None:
                key = "processed_folder" if folder == s.processed_folder else "folder"
                if fault is MailboxFault.SERVER:
                    fault = MailboxFault.FOLDER
            self._fail(fault, explain(fault, s, doing, reason, key))


def _size(item: Mapping[bytes, Any] | None) -> int | None:
    value = None if item is None else item.get(b"RFC822.SIZE")
    return value if isinstance(value, int) else None


def _body(item: Mapping[bytes, Any] | None) -> bytes | None:
    if item is None:
        return None
    for key in (b"BODY[]<0>", b"BODY[]"):
        value = item.get(key)
        if isinstance(value, bytes):
            return value
    return None

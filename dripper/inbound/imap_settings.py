"""Where the IMAP mailbox is and how to reach it (`[replies]`), checked when read: its own
module, so the fault messages (imap_errors) and the mailbox (imap) both use it without
importing each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dripper.errors import ConfigError
from dripper.transport.smtp import is_loopback

__all__ = ["DEFAULT_TIMEOUT", "SECURITY", "ImapSettings"]

SECURITY = ("tls", "starttls", "none")
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ImapSettings:
    """Where the mailbox is and how to reach it; `[replies]` in config.toml. The password is
    not part of it, so it never shows up in a repr."""

    host: str
    port: int = 993
    security: str = "tls"
    username: str = ""
    folder: str = "INBOX"
    processed_folder: str = ""
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    password_env: str = field(default="DRIPPER_IMAP_PASSWORD", compare=False)  # for messages

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ConfigError(
                f"[replies] security = {self.security!r}: expected one of {', '.join(SECURITY)}"
            )
        if self.security == "none" and not is_loopback(self.host):
            raise ConfigError(
                f'[replies] security = "none" is refused for {self.host}: only a loopback '
                "IMAP server (127.0.0.1, ::1, localhost) may be reached without TLS; "
                'use "tls" or "starttls"'
            )
        if self.processed_folder and self.processed_folder == self.folder:
            raise ConfigError(
                f"[replies] processed_folder is the folder being read ({self.folder!r}): "
                "name another folder, or leave it empty to leave messages in place"
            )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_config(cls, replies: Mapping[str, Any]) -> ImapSettings:
        host = str(replies.get("imap_host") or "")
        if not host:
            raise ConfigError("[replies] imap_host is empty: set it to poll a mailbox")
        username = str(replies.get("username") or "")
        if not username:
            raise ConfigError(f"[replies] imap_host = {host!r} but username is empty: set it")
        return cls(
            host=host,
            port=int(replies.get("imap_port", 993)),
            security=str(replies.get("security", "tls")),
            username=username,
            folder=str(replies.get("folder") or "INBOX"),
            processed_folder=str(replies.get("processed_folder") or ""),
            ca_file=str(replies.get("ca_file") or "") or None,
            timeout=float(replies.get("timeout") or DEFAULT_TIMEOUT),
            password_env=str(replies.get("password_env") or "DRIPPER_IMAP_PASSWORD"),
        )

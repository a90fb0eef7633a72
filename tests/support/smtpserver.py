"""A fault-injecting SMTP server for the tests, on aiosmtpd, modelled on Postfix's
`smtp-sink` flags: a chosen reply (4xx/5xx) on a chosen command, optionally only for some
recipients or the first N times; the line dropped at a command or after the final dot;
slow replies; STARTTLS offered or not; implicit TLS; AUTH (recorded, with whether it came
over TLS). It runs in a thread on a free loopback port and records every message it
accepted and every Message-ID it saw.

    server = FaultyServer(faults=[Fault("RCPT", "550 5.1.1 no such user",
                                        recipients={"gone@example.com"})])
    with server:
        ...  # send to 127.0.0.1:server.port
    server.message_ids  # Counter of Message-IDs received (accepted or not)

In tests: the `smtp_server` fixture (tests/delivery/conftest.py, or any conftest that
imports it) builds one from `@pytest.mark.smtp(faults=[...], starttls=True, ...)`.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.certs import Certs

COMMANDS = ("EHLO", "MAIL", "RCPT", "DATA", "DOT")
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


@dataclass
class Fault:
    """What the server does instead of its normal reply to `command` ("DOT" = the end of
    the message data). `reply` like "451 4.3.0 try again later"; `drop`: close the line
    without replying; `delay`: seconds to wait first (then the reply, or the normal one)."""

    command: str
    reply: str | None = None
    drop: bool = False
    delay: float = 0.0
    recipients: Iterable[str] | None = None  # only when one of these is a recipient
    times: int | None = None  # only the first N matching times
    used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command {self.command!r}: expected one of {COMMANDS}")
        self.recipients = None if self.recipients is None else {r.lower() for r in self.recipients}

    def applies(self, recipients: Iterable[str]) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        wanted = self.recipients
        if wanted is not None and not ({r.lower() for r in recipients} & set(wanted)):
            return False
        self.used += 1
        return True


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str | None
    tls: bool


class _Server(SMTP):
    """aiosmtpd's SMTP with the faults applied before each command's normal handling."""

    sink: FaultyServer

    async def _fault(self, command: str, recipients: Iterable[str] = ()) -> bool:
        """Apply the first matching fault; True when it replaced the normal reply."""
        for fault in self.sink.faults:
            if fault.command != command or not fault.applies(recipients):
                continue
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                self.sink.dropped += 1
                assert self.transport is not None
                self.transport.close()
                return True
            if fault.reply is not None:
                await self.push(fault.reply)
                return True
            return False
        return False

    async def smtp_EHLO(self, hostname: str) -> None:
        if not await self._fault("EHLO"):
            await super().smtp_EHLO(hostname)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.sink.mail_commands += 1
        if not await self._fault("MAIL"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        address = (arg or "").partition(":")[2].strip().strip("<>")
        if not await self._fault("RCPT", [address]):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        recipients = self.envelope.rcpt_tos if self.envelope is not None else []
        if not await self._fault("DATA", recipients):
            await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, sink: FaultyServer) -> None:
        self.sink = sink

    async def handle_DATA(self, server: _Server, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        found = _MESSAGE_ID.search(data)
        message_id = found.group(1).decode() if found else None
        sink = self.sink
        with sink.lock:
            sink.message_ids[message_id or ""] += 1
        for fault in sink.faults:
            if fault.command != "DOT" or not fault.applies(envelope.rcpt_tos):
                continue
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                sink.dropped += 1
                assert server.transport is not None
                server.transport.close()
                return "250 dropped"  # never reaches the client: the line is closed
            if fault.reply is not None:
                return fault.reply
            break
        received = Received(
            str(envelope.mail_from),
            tuple(envelope.rcpt_tos),
            data,
            message_id,
            _over_tls(server, session),
        )
        with sink.lock:
            sink.messages.append(received)
            if message_id:
                sink.accepted[message_id] += 1
        return "250 2.0.0 Ok: queued"


class _Controller(Controller):
    def __init__(self, sink: FaultyServer, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        server = _Server(self.handler, **self.SMTP_kwargs)
        server.sink = self.sink
        return server


def _over_tls(server: SMTP, session: Session) -> bool:
    """STARTTLS (aiosmtpd sets session.ssl) or implicit TLS (the socket itself)."""
    transport = server.transport
    implicit = transport is not None and transport.get_extra_info("ssl_object") is not None
    return session.ssl is not None or implicit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultyServer:
    def __init__(
        self,
        *,
        faults: Iterable[Fault] = (),
        certs: Certs | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: bool = False,
    ) -> None:
        self.faults = list(faults)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[Received] = []
        self.message_ids: Counter[str] = Counter()  # every message seen, accepted or not
        self.accepted: Counter[str] = Counter()
        self.auth_attempts: list[tuple[str, bool]] = []  # (user, over TLS)
        self.mail_commands = 0
        self.dropped = 0
        self.lock = threading.Lock()
        if (starttls or implicit_tls) and certs is None:
            raise ValueError("TLS needs certs (tests.support.certs.make_certs)")
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port}
        if starttls:
            assert certs is not None
            kwargs["tls_context"] = certs.server_context()
        if implicit_tls:
            assert certs is not None
            kwargs["ssl_context"] = certs.server_context()
        if auth:
            kwargs["authenticator"] = self._authenticate
            # AUTH only over TLS; aiosmtpd's check only knows STARTTLS, and an implicit TLS
            # connection is TLS from its first byte.
            kwargs["auth_require_tls"] = not implicit_tls
        self._controller = _Controller(self, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        user = data.login.decode() if isinstance(data, LoginPassword) else str(data)
        self.auth_attempts.append((user, _over_tls(server, session)))
        ok = isinstance(data, LoginPassword) and data.password == b"secret"
        return AuthResult(success=ok, handled=False)

    def start(self) -> FaultyServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sent_ids(self) -> list[str]:
        with self.lock:
            return [m.message_id or "" for m in self.messages]


def use_smtp(config: Path, server: FaultyServer) -> None:
    """Point a scaffolded project's config.toml at `server` (loopback, no TLS)."""
    text = config.read_text()
    text = text.replace('kind = "file"', 'kind = "smtp"')
    text = text.replace('host = "localhost"', 'host = "127.0.0.1"')
    text = text.replace("port = 587", f"port = {server.port}")
    text = text.replace('security = "starttls"', 'security = "none"')
    config.write_text(text)

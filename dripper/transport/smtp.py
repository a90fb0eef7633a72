"""SMTP delivery on aiosmtplib: a pool of persistent connections, TLS by default, and an
outcome for every send (DESIGN 7) instead of an exception.

Where a failure happened decides what it means. Anything before the final dot was
handed to the socket is DEFERRED (4xx) or FAILED (5xx): the server has not taken the
message. Once the final dot is out, a lost connection or a missing reply is AMBIGUOUS:
the message may have been delivered, so it is retried with the same Message-ID and
reported as such. That is why DATA is driven here phase by phase rather than through
`SMTP.sendmail`.

Problems with the connection itself (refused, TLS, a 5xx greeting, bad credentials) are
ours or the relay's, not the recipient's: they defer the send, so a misconfigured relay
never fails a whole outbox for good.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import aiosmtplib

from dripper.errors import ConfigError
from dripper.transport.base import Envelope, Outcome, OutcomeKind

if TYPE_CHECKING:
    from dripper.config import Config

_ENHANCED_TEXT = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
SECURITY = ("starttls", "tls", "none")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _outcome(code: int, message: str, *, where: str) -> Outcome:
    """An SMTP reply as an outcome: 2xx sent, 4xx deferred, 5xx failed."""
    m = _ENHANCED_TEXT.match(message)
    enhanced = m.group(1) if m else None
    words = message[m.end() :].strip() if m else message.strip()
    text = f"{where}: {words}" if where else words
    if 200 <= code < 300:
        return Outcome(OutcomeKind.SENT, code, enhanced, text)
    if 500 <= code < 600:
        return Outcome(OutcomeKind.FAILED, code, enhanced, text)
    return Outcome(OutcomeKind.DEFERRED, code, enhanced, text)


class _Unusable(Exception):
    """The connection could not be made ready; carries the outcome for the send."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reply)
        self.outcome = outcome


class SmtpTransport:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        concurrency: int = 4,
        timeout: float = 60,
        data_timeout: float = 600,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in SECURITY:
            raise ConfigError(
                f"[transport] security = {security!r}: expected one of {', '.join(SECURITY)}"
            )
        if security == "none" and not is_loopback(host):
            raise ConfigError(
                f'[transport] security = "none" is refused for {host}: only a loopback relay '
                '(127.0.0.1, ::1, localhost) may be reached without TLS; use "starttls" or "tls"'
            )
        if username and security == "none":
            raise ConfigError(
                '[transport] username is set with security = "none": credentials are only '
                'ever sent over TLS; use "starttls" or "tls", or remove username'
            )
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.concurrency = concurrency
        self.timeout = timeout
        self.data_timeout = max(data_timeout, 1)
        if ssl_context is None and security != "none":
            ssl_context = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file else None)
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(concurrency)
        self.connections_opened = 0  # for tests and the status line

    @classmethod
    def from_config(cls, config: Config, env: Mapping[str, str] | None = None) -> SmtpTransport:
        settings = config.transport
        env = os.environ if env is None else env
        username = str(settings.username or "")
        password = ""
        if username:
            variable = settings.password_env
            password = env.get(variable, "")
            if not password:
                raise ConfigError(
                    f"[transport] username is set but the environment variable {variable} "
                    "(password_env) is empty: export the SMTP password there"
                )
        return cls(
            str(settings.host),
            int(settings.port),
            security=str(settings.security),
            username=username,
            password=password,
            concurrency=int(settings.concurrency),
            timeout=float(settings.timeout),
            data_timeout=float(settings.data_timeout),
            ca_file=settings.ca_file or None,
        )

    # --- sending --------------------------------------------------------------------------

    async def send(self, envelope: Envelope) -> Outcome:
        refused = _check_addresses(envelope)
        if refused is not None:
            return refused
        async with self._slots:
            try:
                client = await self._checkout()
            except _Unusable as exc:
                return exc.outcome
            outcome, reusable = await self._transaction(client, envelope)
            if reusable:
                self._idle.append(client)
            else:
                client.close()
            return outcome

    async def _transaction(
        self, client: aiosmtplib.SMTP, envelope: Envelope
    ) -> tuple[Outcome, bool]:
        """MAIL, RCPT, DATA, the message and its final dot. Returns the outcome and whether
        the connection can carry the next message."""
        try:
            reply = await client.execute_command(
                b"MAIL", b"FROM:<" + envelope.sender.encode() + b">"
            )
            if reply.code != 250:
                return _outcome(reply.code, reply.message, where="MAIL"), await _reset(client)
            reply = await client.execute_command(
                b"RCPT", b"TO:<" + envelope.recipient.encode() + b">"
            )
            if reply.code not in (250, 251):
                return _outcome(reply.code, reply.message, where="RCPT"), await _reset(client)
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                return _outcome(reply.code, reply.message, where="DATA"), await _reset(client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Nothing of the message was sent: the server has not taken it.
            return Outcome(OutcomeKind.DEFERRED, reply=f"connection lost: {_describe(exc)}"), False

        protocol = client.protocol
        if protocol is None:
            return Outcome(OutcomeKind.DEFERRED, reply="connection lost before the message"), False
        try:
            protocol.write(_dot_stuffed(envelope.data) + b".\r\n")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(OutcomeKind.DEFERRED, reply=f"connection lost: {_describe(exc)}"), False
        # From here on the final dot may have reached the server.
        try:
            reply = await protocol.read_response(timeout=self.data_timeout)
        except aiosmtplib.SMTPTimeoutError:
            return (
                Outcome(
                    OutcomeKind.AMBIGUOUS,
                    reply=f"no reply to the final dot within {self.data_timeout:.0f}s: "
                    "possibly delivered",
                ),
                False,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            transport = protocol.transport
            unsent = isinstance(transport, asyncio.WriteTransport) and (
                transport.get_write_buffer_size() > 0
            )
            if unsent:  # the dot never left this machine
                return Outcome(
                    OutcomeKind.DEFERRED, reply=f"connection lost: {_describe(exc)}"
                ), False
            return (
                Outcome(
                    OutcomeKind.AMBIGUOUS,
                    reply=f"connection lost after the final dot ({_describe(exc)}): "
                    "possibly delivered",
                ),
                False,
            )
        return _outcome(reply.code, reply.message, where="" if reply.code == 250 else "DATA"), True

    # --- the pool ---------------------------------------------------------------------------

    async def _checkout(self) -> aiosmtplib.SMTP:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
        return await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        where = f"{self.host}:{self.port}"
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=False,
            tls_context=self.ssl_context,
            local_hostname=self.local_hostname,
        )
        try:
            await client.connect()
            self.connections_opened += 1
            await client.ehlo()
            if self.security == "starttls":
                if not client.supports_extension("starttls"):
                    raise _Unusable(
                        Outcome(
                            OutcomeKind.DEFERRED,
                            reply=f"{where} does not offer STARTTLS: refusing to send in the "
                            'clear (security = "starttls"); retrying later',
                        )
                    )
                await client.starttls(tls_context=self.ssl_context)
                await client.ehlo()
            if self.username:
                # Only ever over TLS: implicit, or STARTTLS that just succeeded.
                assert self.security in ("tls", "starttls")
                await client.login(self.username, self._password)
        except _Unusable:
            client.close()
            raise
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise _Unusable(
                Outcome(
                    OutcomeKind.DEFERRED,
                    exc.code,
                    None,
                    f"{where} refused the credentials of {self.username}: {exc.message}",
                )
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise _Unusable(
                Outcome(OutcomeKind.DEFERRED, exc.code, None, f"{where}: {exc.message}")
            ) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise _Unusable(
                Outcome(OutcomeKind.DEFERRED, reply=f"cannot connect to {where}: {_describe(exc)}")
            ) from None
        return client

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refusal, so the connection can carry the next message."""
    try:
        return (await client.execute_command(b"RSET")).code == 250
    except (aiosmtplib.SMTPException, OSError):
        return False


def _dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line starting with "." gets another; the message ends in CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


def _check_addresses(envelope: Envelope) -> Outcome | None:
    """Addresses are validated before they reach SMTP (DESIGN 9). A bad recipient fails
    (and is suppressed: it can never work); a bad sender is our configuration's fault and
    only defers."""
    problem = _address_problem(envelope.recipient)
    if problem is not None:
        return Outcome(OutcomeKind.FAILED, None, "5.1.3", f"recipient {problem}")
    problem = _address_problem(envelope.sender)
    if problem is not None:
        return Outcome(OutcomeKind.DEFERRED, reply=f"sender {problem} (fix [sender] from)")
    return None


@lru_cache(maxsize=4096)
def _address_problem(address: str) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    if any(c in address for c in "\r\n\0<>"):
        return f"{address!r}: forbidden characters"
    try:
        # Syntax only: special-use domains (.test, .invalid) are the relay's business.
        validate_email(
            address, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        return f"{address!r}: {exc}"
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

"""The SMTP transport against a real (fault-injecting) SMTP server on loopback: every fault
gives its DESIGN 7 outcome, the pool reuses connections, TLS and AUTH rules hold."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import pytest

from dripper.errors import ConfigError
from dripper.transport.base import Envelope, Outcome, OutcomeKind
from dripper.transport.smtp import SmtpTransport
from tests.support.certs import Certs
from tests.support.smtpserver import Fault, FaultyServer

SENDER = "hello@acme.test"


def message(n: int, to: str = "ada@example.com", size: int = 2000) -> Envelope:
    mid = f"m{n}@acme.test"
    body = (b".a line that starts with a dot\r\n" + b"x" * 70 + b"\r\n") * (size // 100)
    data = (
        f"From: {SENDER}\r\nTo: {to}\r\nMessage-ID: <{mid}>\r\nSubject: test {n}\r\n\r\n".encode()
        + body
    )
    return Envelope(mid, SENDER, to, data)


def transport(server: FaultyServer, **kwargs: object) -> SmtpTransport:
    options: dict[str, object] = {"security": "none", "timeout": 5, "data_timeout": 5}
    options.update(kwargs)
    return SmtpTransport(server.host, server.port, **options)  # type: ignore[arg-type]


def send_all(t: SmtpTransport, envelopes: Sequence[Envelope]) -> list[Outcome]:
    async def go() -> list[Outcome]:
        try:
            return list(await asyncio.gather(*(t.send(e) for e in envelopes)))
        finally:
            await t.close()

    return asyncio.run(go())


def test_a_2xx_is_sent_and_the_message_arrives_intact(smtp_server: FaultyServer) -> None:
    envelope = message(1)
    [outcome] = send_all(transport(smtp_server), [envelope])
    assert outcome.kind is OutcomeKind.SENT
    assert outcome.code == 250
    [received] = smtp_server.messages
    assert received.data.replace(b"\r\n", b"\n") == envelope.data.replace(b"\r\n", b"\n")
    assert received.recipients == ("ada@example.com",)


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA", "DOT"])
@pytest.mark.parametrize("reply", ["421 4.3.2 shutting down", "451 4.3.0 try again later"])
def test_4xx_on_any_command_defers(smtp_server: FaultyServer, command: str, reply: str) -> None:
    smtp_server.faults.append(Fault(command, reply))
    [outcome] = send_all(transport(smtp_server), [message(1)])
    assert outcome.kind is OutcomeKind.DEFERRED
    assert outcome.code == int(reply[:3])
    assert outcome.enhanced == reply.split()[1]
    assert smtp_server.accepted == {}


def test_550_5_1_1_fails_and_suppresses(smtp_server: FaultyServer) -> None:
    smtp_server.faults.append(
        Fault("RCPT", "550 5.1.1 no such user", recipients=["gone@example.com"])
    )
    gone, fine = send_all(
        transport(smtp_server), [message(1, "gone@example.com"), message(2, "ada@example.com")]
    )
    assert gone.kind is OutcomeKind.FAILED
    assert gone.suppresses
    assert not gone.is_policy
    assert "no such user" in gone.reply
    assert fine.kind is OutcomeKind.SENT  # the refusal did not spoil the connection


def test_554_5_7_1_fails_as_policy_without_suppressing(smtp_server: FaultyServer) -> None:
    smtp_server.faults.append(Fault("DOT", "554 5.7.1 message refused as spam"))
    [outcome] = send_all(transport(smtp_server), [message(1)])
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.is_policy
    assert not outcome.suppresses


def test_the_line_dropped_before_the_final_dot_defers(smtp_server: FaultyServer) -> None:
    smtp_server.faults.append(Fault("DATA", drop=True, times=1))
    first, second = send_all(transport(smtp_server, concurrency=1), [message(1), message(2)])
    assert first.kind is OutcomeKind.DEFERRED
    assert "connection lost" in first.reply
    assert second.kind is OutcomeKind.SENT  # a fresh connection replaces the broken one
    assert smtp_server.message_ids == {"m2@acme.test": 1}


def test_the_line_dropped_after_the_final_dot_is_ambiguous(smtp_server: FaultyServer) -> None:
    smtp_server.faults.append(Fault("DOT", drop=True, times=1))
    first, second = send_all(transport(smtp_server, concurrency=1), [message(1), message(2)])
    assert first.kind is OutcomeKind.AMBIGUOUS
    assert "possibly delivered" in first.reply
    assert smtp_server.message_ids["m1@acme.test"] == 1  # the server did get it
    assert second.kind is OutcomeKind.SENT


def test_no_reply_to_the_final_dot_is_ambiguous(smtp_server: FaultyServer) -> None:
    smtp_server.faults.append(Fault("DOT", delay=3, times=1))
    [outcome] = send_all(transport(smtp_server, data_timeout=1), [message(1)])
    assert outcome.kind is OutcomeKind.AMBIGUOUS
    assert "no reply to the final dot within 1s" in outcome.reply


def test_the_final_dot_waits_ten_minutes_by_default() -> None:
    t = SmtpTransport("127.0.0.1", 25, security="none")
    assert t.data_timeout >= 600


def test_a_closed_port_defers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once it is closed
    t = SmtpTransport("127.0.0.1", port, security="none", timeout=2)
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.DEFERRED
    assert "cannot connect" in outcome.reply


def test_the_pool_reuses_at_most_concurrency_connections(smtp_server: FaultyServer) -> None:
    t = transport(smtp_server, concurrency=4)
    outcomes = send_all(t, [message(n) for n in range(50)])
    assert all(o.kind is OutcomeKind.SENT for o in outcomes)
    assert t.connections_opened <= 4
    assert sorted(smtp_server.message_ids.values()) == [1] * 50  # each Message-ID once


def test_an_invalid_recipient_fails_without_talking_to_the_server(
    smtp_server: FaultyServer,
) -> None:
    t = transport(smtp_server)
    bad = Envelope("m1@acme.test", SENDER, "not an address", b"Subject: x\r\n\r\nx\r\n")
    injected = Envelope("m2@acme.test", SENDER, "a@example.com>\r\nRCPT TO:<b@x.com", b"x\r\n")
    outcomes = send_all(t, [bad, injected])
    assert [o.kind for o in outcomes] == [OutcomeKind.FAILED, OutcomeKind.FAILED]
    assert all(o.enhanced == "5.1.3" for o in outcomes)
    assert t.connections_opened == 0
    assert smtp_server.mail_commands == 0


@pytest.mark.smtp(starttls=False, auth=True)
def test_missing_starttls_sends_no_credentials_and_defers(
    smtp_server: FaultyServer, certs: Certs
) -> None:
    t = transport(
        smtp_server,
        security="starttls",
        username="dripper",
        password="secret",
        ca_file=certs.ca_file,
    )
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.DEFERRED
    assert "does not offer STARTTLS" in outcome.reply
    assert smtp_server.auth_attempts == []
    assert smtp_server.mail_commands == 0


@pytest.mark.smtp(starttls=True, auth=True)
def test_starttls_then_auth_over_tls(smtp_server: FaultyServer, certs: Certs) -> None:
    t = transport(
        smtp_server,
        security="starttls",
        username="dripper",
        password="secret",
        ca_file=certs.ca_file,
    )
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.SENT, outcome
    assert smtp_server.auth_attempts == [("dripper", True)]
    assert smtp_server.messages[0].tls


@pytest.mark.smtp(starttls=True, auth=True)
def test_bad_credentials_defer_with_a_clear_reason(smtp_server: FaultyServer, certs: Certs) -> None:
    t = transport(
        smtp_server,
        security="starttls",
        username="dripper",
        password="wrong",
        ca_file=certs.ca_file,
    )
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.DEFERRED
    assert "refused the credentials of dripper" in outcome.reply


@pytest.mark.smtp(starttls=True)
def test_an_untrusted_certificate_is_refused(smtp_server: FaultyServer) -> None:
    t = transport(smtp_server, security="starttls")  # the system CAs do not know the test CA
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.DEFERRED
    assert smtp_server.mail_commands == 0


@pytest.mark.smtp(implicit_tls=True, auth=True)
def test_implicit_tls(smtp_server: FaultyServer, certs: Certs) -> None:
    t = transport(
        smtp_server, security="tls", username="dripper", password="secret", ca_file=certs.ca_file
    )
    [outcome] = send_all(t, [message(1)])
    assert outcome.kind is OutcomeKind.SENT, outcome
    assert smtp_server.auth_attempts == [("dripper", True)]


@pytest.mark.parametrize("host", ["10.1.2.3", "mail.example.com", "192.168.0.1"])
def test_security_none_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match=r'security = "none" is refused'):
        SmtpTransport(host, 25, security="none")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_security_none_is_allowed_on_loopback(host: str) -> None:
    SmtpTransport(host, 25, security="none")


def test_credentials_without_tls_are_refused() -> None:
    with pytest.raises(ConfigError, match="only ever sent over TLS"):
        SmtpTransport("127.0.0.1", 25, security="none", username="u", password="p")

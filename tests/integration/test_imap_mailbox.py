"""The IMAP adapter against a real Dovecot: incremental reads that leave mail alone, a new
UIDVALIDITY, oversized messages, the processed folder, and every way a server can fail."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import pytest

from dripper.errors import ConfigError
from dripper.inbound.imap import ImapMailbox
from dripper.inbound.imap_settings import ImapSettings
from dripper.inbound.mailbox import (
    Batch,
    FetchedMessage,
    MailboxError,
    MailboxFault,
    MailboxState,
)
from tests.support.dovecot import DovecotServer


def message(n: int, body: bytes = b"") -> bytes:
    return (
        (
            f"From: customer{n}@example.com\r\nTo: shop@acme.test\r\n"
            f"Subject: reply {n}\r\nMessage-ID: <reply-{n}@example.com>\r\n\r\n"
        ).encode()
        + (body or f"Thanks, number {n}.".encode())
        + b"\r\n"
    )


def settings(server: DovecotServer, **overrides: object) -> ImapSettings:
    """Plain port on loopback (security "none") unless told otherwise."""
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": server.user,
        "timeout": 5.0,
    }
    values.update(overrides)
    return ImapSettings(**values)  # type: ignore[arg-type]


def read_all(
    server: DovecotServer, state: MailboxState | None, **options: int
) -> tuple[list[Batch], MailboxState | None, bool]:
    """One poll as the poller does it: every batch, the state of the last one."""
    with ImapMailbox(settings(server), server.password) as mailbox:
        new = mailbox.fetch_new(state, **options)
        batches = list(new)
    final = batches[-1].state if batches else new.state
    return batches, final, new.restarted


def raws(batches: list[Batch]) -> list[bytes]:
    return [m.raw for b in batches for m in b.messages]


def log_line(server: DovecotServer, wanted: Callable[[str], bool]) -> str:
    """The first line of Dovecot's log that matches, waiting for the log process to write it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in server.log_file.read_text(errors="replace").splitlines():
            if wanted(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no such line in Dovecot's log:\n{server.logs()}")


# --- reading -----------------------------------------------------------------------------------


def test_reads_only_what_is_new(dovecot: DovecotServer) -> None:
    """A poll returns each message once, byte for byte in UID order; the next poll from the
    state it returned finds nothing, and after one more APPEND only that one."""
    uids = [dovecot.append("INBOX", message(n)) for n in range(3)]

    batches, state, restarted = read_all(dovecot, None, batch=2)
    assert not restarted
    assert [m.uid for b in batches for m in b.messages] == uids
    assert raws(batches) == [message(n) for n in range(3)]
    assert [len(b.messages) for b in batches] == [2, 1]
    assert state == MailboxState(dovecot.uidvalidity(), uids[-1])

    again, same, _ = read_all(dovecot, state)
    assert again == []
    assert same == state

    newest = dovecot.append("INBOX", message(3))
    batches, state, _ = read_all(dovecot, state)
    assert [m.uid for b in batches for m in b.messages] == [newest]
    assert raws(batches) == [message(3)]
    assert state is not None
    assert state.last_uid == newest


def test_reading_leaves_mail_unseen_and_in_place(dovecot: DovecotServer) -> None:
    """Without processed_folder a poll changes nothing: no \\Seen (or any flag), no message
    moved or removed, no folder made; checked through a separate connection."""
    uids = [dovecot.append("INBOX", message(n)) for n in range(2)]
    flagged = dovecot.append("INBOX", message(2), flags=[r"\Flagged"])
    # \Recent too: only a read-write SELECT takes it, so it shows the folder was EXAMINEd.
    before = {uid: dovecot.flags("INBOX", uid) for uid in [*uids, flagged]}
    assert all(r"\Recent" in flags for flags in before.values())

    batches, _, _ = read_all(dovecot, None)
    assert len(raws(batches)) == 3

    assert dovecot.uids("INBOX") == [*uids, flagged]
    for uid in [*uids, flagged]:
        flags = dovecot.flags("INBOX", uid)
        assert r"\Seen" not in flags
        assert flags == before[uid]
        assert dovecot.message("INBOX", uid) == message([*uids, flagged].index(uid))
    assert dovecot.folders() == ["INBOX"]


def test_search_quirk_never_repeats_the_last_message(dovecot: DovecotServer) -> None:
    """`UID N:*` matches the highest UID even below N: with the newest message expunged,
    a poll after the one before it must still find nothing."""
    first, second, third = (dovecot.append("INBOX", message(n)) for n in range(3))
    dovecot.delete("INBOX", third)  # UIDNEXT stays past it, so the search does run

    batches, state, _ = read_all(dovecot, MailboxState(dovecot.uidvalidity(), second))
    assert batches == []
    assert state == MailboxState(dovecot.uidvalidity(), second)
    assert first < second


def test_new_uidvalidity_reads_the_folder_again(dovecot: DovecotServer) -> None:
    """When the folder's UIDVALIDITY is not the stored one, the poll says so and reads every
    message from the start; the state it hands back carries the new UIDVALIDITY."""
    for n in range(2):
        dovecot.append("INBOX", message(n))
    _, state, _ = read_all(dovecot, None)
    assert state is not None

    new_validity = dovecot.reset_uidvalidity("INBOX")
    dovecot.append("INBOX", message(2))

    with ImapMailbox(settings(dovecot), dovecot.password) as mailbox:
        new = mailbox.fetch_new(state)
        batches = list(new)
    assert new.restarted
    assert new.state == MailboxState(new_validity, 0)
    assert sorted(raws(batches)) == sorted(message(n) for n in range(3))
    assert batches[-1].state.uidvalidity == new_validity

    again, _, restarted = read_all(dovecot, batches[-1].state)
    assert again == []
    assert not restarted


def test_oversized_message_is_skipped_without_download(dovecot: DovecotServer) -> None:
    """A message over max_bytes is reported with its UID and size, not downloaded (the
    server's own count of body bytes sent proves it), and the state moves past it."""
    small = dovecot.append("INBOX", message(0))
    big_raw = message(1, b"x" * 300_000)
    big = dovecot.append("INBOX", big_raw)
    last = dovecot.append("INBOX", message(2))

    batches, state, _ = read_all(dovecot, None, max_bytes=100_000)
    assert [m.uid for b in batches for m in b.messages] == [small, last]
    skipped = [t for b in batches for t in b.too_large]
    assert [(t.uid, t.size) for t in skipped] == [(big, len(big_raw))]
    assert state is not None
    assert state.last_uid == last

    # Dovecot logs each session's bytes out and body bytes when it ends; ours fetched two.
    line = log_line(dovecot, lambda text: "Logged out" in text and "body_count=2" in text)
    sent = int(re.search(r"\bout=(\d+)", line).group(1))  # type: ignore[union-attr]
    assert sent < 100_000, line
    assert dovecot.flags("INBOX", big) - {r"\Recent"} == frozenset()


def test_batches_are_bounded_in_bytes(dovecot: DovecotServer) -> None:
    """A batch never holds more than batch_bytes (unless one message alone is larger)."""
    for n in range(3):
        dovecot.append("INBOX", message(n, b"y" * 40_000))

    batches, _, _ = read_all(dovecot, None, batch=50, batch_bytes=50_000)
    assert [len(b.messages) for b in batches] == [1, 1, 1]
    assert [b.state.last_uid for b in batches] == [1, 2, 3]


# --- the processed folder ------------------------------------------------------------------------


def test_processed_folder_takes_exactly_the_recorded_messages(dovecot: DovecotServer) -> None:
    """With processed_folder set, the folder is made if missing and exactly the messages the
    caller passes are moved there, intact and still unseen; the rest stay."""
    uids = [dovecot.append("INBOX", message(n)) for n in range(3)]
    config = settings(dovecot, processed_folder="Processed")

    with ImapMailbox(config, dovecot.password) as mailbox:
        new = mailbox.fetch_new(None)
        recorded = [m.uid for b in new for m in b.messages][:2]
        mailbox.move_processed(recorded)

    assert dovecot.uids("INBOX") == [uids[2]]
    moved = dovecot.uids("Processed")
    assert len(moved) == 2
    assert [dovecot.message("Processed", uid) for uid in moved] == [message(0), message(1)]
    assert all(r"\Seen" not in dovecot.flags("Processed", uid) for uid in moved)


def test_processed_folder_without_move_expunges_only_those_uids() -> None:
    """On a server without MOVE: COPY, \\Deleted and UID EXPUNGE of the moved UIDs only; a
    message someone else marked \\Deleted (but did not expunge) is still there."""
    with DovecotServer(tls=False, without_capabilities={"MOVE"}) as server:
        keep = server.append("INBOX", message(0), flags=[r"\Deleted"])
        take = [server.append("INBOX", message(n)) for n in (1, 2)]
        server.create_folder("Processed")

        with ImapMailbox(settings(server, processed_folder="Processed"), server.password) as box:
            assert not box._connected().has_capability("MOVE")
            new = box.fetch_new(None)
            box.move_processed([m.uid for b in new for m in b.messages if m.uid in take])

        assert server.uids("INBOX") == [keep]
        assert r"\Deleted" in server.flags("INBOX", keep)
        moved = server.uids("Processed")
        assert [server.message("Processed", uid) for uid in moved] == [message(1), message(2)]
        assert all(r"\Deleted" not in server.flags("Processed", uid) for uid in moved)


# --- failures ------------------------------------------------------------------------------------


def assert_one_line(error: MailboxError, *parts: str, secret: str) -> None:
    text = str(error)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    assert secret not in text


def test_wrong_password_is_one_clear_error(dovecot: DovecotServer) -> None:
    """A refused login names user@host:port and what to check, and never the password."""
    wrong = "not-the-Secret-42"
    with pytest.raises(MailboxError) as caught:
        ImapMailbox(settings(dovecot), wrong).connect()
    assert caught.value.fault is MailboxFault.LOGIN
    assert_one_line(
        caught.value,
        f"IMAP login failed for shop@127.0.0.1:{dovecot.port}",
        "DRIPPER_IMAP_PASSWORD",
        secret=wrong,
    )


def test_password_and_mail_stay_out_of_debug_logs(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Even at DEBUG, neither the password nor a message's text reaches any log."""
    dovecot.append("INBOX", message(0, b"private words of a customer"))
    caplog.set_level(logging.DEBUG)
    batches, _, _ = read_all(dovecot, None)
    assert len(raws(batches)) == 1
    assert dovecot.password not in caplog.text
    assert "private words" not in caplog.text


def test_missing_folder_names_the_setting(dovecot: DovecotServer) -> None:
    """A folder that does not exist is a FOLDER error pointing at [replies] folder."""
    with (
        ImapMailbox(settings(dovecot, folder="Replies"), dovecot.password) as mailbox,
        pytest.raises(MailboxError) as caught,
    ):
        mailbox.fetch_new(None)
    assert caught.value.fault is MailboxFault.FOLDER
    assert_one_line(caught.value, "'Replies'", "check [replies] folder", secret=dovecot.password)


def test_stopped_server_is_one_clear_error(dovecot: DovecotServer) -> None:
    """Nothing listening: MailboxError naming host:port, never a traceback."""
    dovecot.stop()
    with pytest.raises(MailboxError) as caught:
        ImapMailbox(settings(dovecot), dovecot.password).connect()
    assert caught.value.fault is MailboxFault.UNREACHABLE
    assert_one_line(caught.value, f"127.0.0.1:{dovecot.port}", secret=dovecot.password)


def test_cut_in_the_middle_loses_and_repeats_nothing(dovecot: DovecotServer) -> None:
    """Dovecot going away between two batches raises MailboxError; once it is back, a poll
    from the last stored state returns exactly the rest."""
    sent = [message(n) for n in range(5)]
    for raw in sent:
        dovecot.append("INBOX", raw)
    recorded: list[FetchedMessage] = []

    with ImapMailbox(settings(dovecot), dovecot.password) as mailbox:
        batches = iter(mailbox.fetch_new(None, batch=2))
        first = next(batches)
        recorded.extend(first.messages)
        stored = first.state
        dovecot.stop()
        with pytest.raises(MailboxError) as caught:
            next(batches)
    assert caught.value.fault is MailboxFault.DROPPED
    assert_one_line(caught.value, f"127.0.0.1:{dovecot.port}", secret=dovecot.password)

    dovecot.start()
    rest, _, restarted = read_all(dovecot, stored, batch=2)
    assert not restarted
    recorded.extend(m for b in rest for m in b.messages)
    assert [m.raw for m in recorded] == sent
    assert len({m.uid for m in recorded}) == len(sent)


def error_within(seconds: float, call: Callable[[], object]) -> MailboxError | None:
    """The MailboxError `call` raises, run in a thread so that a call that hangs fails the
    test (None) instead of hanging it; the caller thaws the server to let the thread end."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return None
    assert raised, "no error at all"
    assert isinstance(raised[0], MailboxError), repr(raised[0])
    return raised[0]


def test_hung_server_times_out(dovecot: DovecotServer) -> None:
    """A server that accepts but never answers costs one timeout, then a MailboxError."""
    mailbox = ImapMailbox(settings(dovecot, timeout=0.5), dovecot.password)
    with dovecot.frozen():
        error = error_within(3, mailbox.connect)
    assert error is not None, "connect() hung on a server that never answers"
    assert error.fault is MailboxFault.TIMEOUT
    assert_one_line(error, f"127.0.0.1:{dovecot.port}", "0.5s", secret=dovecot.password)


def test_server_hanging_mid_fetch_times_out(dovecot: DovecotServer) -> None:
    """A server that stops answering between batches raises TIMEOUT instead of hanging."""
    for n in range(4):
        dovecot.append("INBOX", message(n))
    with ImapMailbox(settings(dovecot, timeout=0.5), dovecot.password) as mailbox:
        batches = iter(mailbox.fetch_new(None, batch=2))
        next(batches)
        with dovecot.frozen():
            error = error_within(3, lambda: next(batches))
    assert error is not None, "fetching hung on a server that stopped answering"
    assert error.fault is MailboxFault.TIMEOUT


def test_security_none_only_for_loopback() -> None:
    """security = "none" is refused for a host that is not loopback, allowed for one."""
    with pytest.raises(ConfigError, match=r'security = "none" is refused for imap\.example\.net'):
        ImapSettings("imap.example.net", 143, security="none", username="shop")
    for host in ("127.0.0.1", "::1", "localhost"):
        assert ImapSettings(host, 143, security="none").security == "none"


# --- TLS -----------------------------------------------------------------------------------------


def test_implicit_tls_with_the_test_ca(dovecot: DovecotServer) -> None:
    """security = "tls" on the TLS port verifies the certificate against ca_file and reads."""
    dovecot.append("INBOX", message(0))
    assert dovecot.tls_port is not None
    config = settings(dovecot, port=dovecot.tls_port, security="tls", ca_file=str(dovecot.ca_file))
    with ImapMailbox(config, dovecot.password) as mailbox:
        assert raws(list(mailbox.fetch_new(None))) == [message(0)]


def test_untrusted_certificate_is_refused(dovecot: DovecotServer) -> None:
    """Without the test CA, the system CAs do not vouch for the server: a TLS MailboxError,
    before any password is sent."""
    assert dovecot.tls_port is not None
    config = settings(dovecot, port=dovecot.tls_port, security="tls")
    with pytest.raises(MailboxError) as caught:
        ImapMailbox(config, dovecot.password).connect()
    assert caught.value.fault is MailboxFault.TLS
    assert_one_line(caught.value, "certificate verify failed", secret=dovecot.password)


def test_starttls_with_the_test_ca(dovecot: DovecotServer) -> None:
    """security = "starttls" on the plain port upgrades, verifies and reads."""
    dovecot.append("INBOX", message(0))
    config = settings(dovecot, security="starttls", ca_file=str(dovecot.ca_file))
    with ImapMailbox(config, dovecot.password) as mailbox:
        assert raws(list(mailbox.fetch_new(None))) == [message(0)]
    log_line(dovecot, lambda text: "Login: user=<shop>" in text and "TLS" in text)


def test_missing_starttls_is_refused_before_login() -> None:
    """A server that does not offer STARTTLS gets no login at all under "starttls"."""
    with DovecotServer(tls=False) as server:
        config = settings(server, security="starttls", ca_file=None)
        with pytest.raises(MailboxError) as caught:
            ImapMailbox(config, server.password).connect()
        assert caught.value.fault is MailboxFault.TLS
        assert_one_line(caught.value, "does not offer STARTTLS", secret=server.password)
        log_line(server, lambda text: "no auth attempts" in text)
        assert "Login:" not in server.log_file.read_text()

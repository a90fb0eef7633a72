"""The hit writer's database work, in a process of its own.

Why a process: classifying and writing a batch of hits is Python and database-driver
work that, in a thread of `dripper serve`, takes the interpreter lock from the event loop
that answers pixels and redirects (the sqlite3 driver alone gives it up and takes it back
on every row). Measured with `bench/serve.py`, the loop then answered a fraction of what it
answers when the writes happen elsewhere. So the writer thread of `dripper.web.writer`
only hands each batch over a pipe and waits, without the lock, for this process to say
what it stored.

The pipe carries frames: a 4-byte length, then `marshal` data (plain tuples of strings
and numbers; nothing that runs code when it is read). Parent to child: a batch of hits.
Child to parent: ("ok", [(kind, class, count), ...]) once the batch is committed, or
("error", message) when it was not (the parent keeps the batch and retries).

The child ignores SIGINT and SIGTERM (a Ctrl-C or a service manager signals the whole
process group): it stops when its input closes, after the batch in hand, so the parent
decides when hits are written and a SIGTERM still drains every answered hit.
"""

from __future__ import annotations

import logging
import marshal
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

# Only the standard library at the top: the child ignores the service manager's signals
# before it imports anything heavy (see `main`).
if TYPE_CHECKING:
    from dripper.services.hits import Hit
    from dripper.store import Store

log = logging.getLogger("dripper.serve")

URL_ENV = "DRIPPER_HITPROC_DATABASE"  # not argv: a database password stays out of `ps`
DOMAIN_ENV = "DRIPPER_HITPROC_DOMAIN"
RELAYS_ENV = "DRIPPER_HITPROC_RELAYS"  # [tracking] apple_relay_ranges, resolved; "" for none
_LENGTH = struct.Struct(">I")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_FRAME = 64 * 1024 * 1024  # a batch of 500 hits is ~0.5 MB; more is a stream out of step


class HitWriteError(Exception):
    """The batch was not stored (the database refused, or the child process died)."""


def encode(hits: Sequence[Hit]) -> list[tuple[Any, ...]]:
    """Hits as plain tuples (times as whole microseconds since 1970: exact)."""
    return [
        (h.kind.value, h.delivery_id, (h.at - _EPOCH) // _MICROSECOND, h.method,
         h.user_agent, h.ip, h.url)
        for h in hits
    ]  # fmt: skip


def decode(rows: Sequence[Sequence[Any]]) -> list[Hit]:
    from dripper.engine.hits import HitKind
    from dripper.services.hits import Hit

    return [
        Hit(HitKind(kind), delivery_id, _EPOCH + timedelta(microseconds=at), method, agent, ip, url)
        for kind, delivery_id, at, method, agent, ip, url in rows
    ]


def write_frame(stream: IO[bytes], payload: Any) -> None:
    data = marshal.dumps(payload)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next frame's value; None at the end of the stream (or a frame cut short)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > _MAX_FRAME:
        raise ValueError(f"a frame of {size:,} bytes: the stream is out of step")
    data = stream.read(size)
    if len(data) < size:
        return None
    return marshal.loads(data)  # noqa: S302 (a pipe between this process and its own child)


class HitProcess:
    """The parent's side: starts the child on first use (and again if it died) and
    turns one batch into one request and one answer.

    Each batch is written once, with one exception said plainly: a child that dies after
    its commit and before its answer (a crash of the child itself, not of `serve`) gets
    that one batch again from the retry, and it is stored twice."""

    def __init__(self, database_url: str, domain: str, relays: str = "") -> None:
        self.database_url = database_url
        self.domain = domain
        self.relays = relays
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False  # after `close`, no child is started again

    def start(self) -> None:
        """Start the child now, so its imports overlap the server's start (a failure here
        is only logged: the first batch tries again, and keeps its hits until it works)."""
        try:
            self._running()
        except OSError as exc:
            log.error("cannot start the hit writer process: %s", exc)

    def write(self, hits: Sequence[Hit]) -> dict[tuple[str, str], int]:
        proc = self._running()
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            write_frame(proc.stdin, encode(hits))
            reply = read_frame(proc.stdout)
            if reply is None:
                raise EOFError("it stopped before it answered")
            status, detail = reply
            if status == "ok":
                return {(kind, cls): n for kind, cls, n in detail}
        except Exception as exc:  # gone, or out of step: a new child for the retry
            self._forget()
            raise HitWriteError(f"the hit writer process failed: {exc}") from None
        raise HitWriteError(str(detail))  # the database's refusal: the same child retries

    def close(self, timeout: float = 30.0) -> None:
        """Let the child finish what it holds and exit; none is started after this (a
        writer thread still retrying past its stop timeout gets errors, not a new child)."""
        self._closed = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._forget()
        if self._closed:
            raise HitWriteError("the hit writer process was closed")
        env = {
            **os.environ,
            URL_ENV: self.database_url,
            DOMAIN_ENV: self.domain,
            RELAYS_ENV: self.relays,
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dripper.web.hitproc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            process_group=0,  # a Ctrl-C in serve's terminal is serve's to handle
        )
        return self._proc

    def _forget(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()


def main() -> None:
    """The child: batches in on stdin, what was stored out on stdout, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="dripper serve (hit writer): %(message)s")
    # The frames get a copy of stdout of their own, and stdout itself goes to stderr: a
    # stray print of any library can never put the pipe out of step.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from dripper.services.hits import load_relay_ranges, record_hits
    from dripper.store import open_store

    url, domain = os.environ[URL_ENV], os.environ[DOMAIN_ENV]
    relays = None
    if path := os.environ.get(RELAYS_ENV, ""):
        try:  # `serve` read it at start; gone since, the other signs still class the opens
            relays = load_relay_ranges(path)
        except Exception as exc:
            log.error("Apple's relay ranges left out: %s", exc)
    store: Store | None = None
    source = sys.stdin.buffer
    while (batch := _next_batch(source)) is not None:
        try:
            if store is None:  # opened here: a database that is down is an answer too
                store = open_store(url)
            counts = record_hits(store, domain, decode(batch), relays)
        except Exception as exc:  # the parent keeps the batch and retries
            write_frame(sink, ("error", str(exc)))
            continue
        write_frame(sink, ("ok", [(kind, cls, n) for (kind, cls), n in counts.items()]))
    if store is not None:
        store.close()


def _next_batch(source: IO[bytes]) -> Any | None:
    """The next batch; a stream out of step (never from `serve`) ends the child with one
    line, and `serve` starts another."""
    try:
        return read_frame(source)
    except (ValueError, EOFError, TypeError) as exc:
        log.error("input out of step, exiting: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()

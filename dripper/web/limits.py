"""`dripper serve` reached directly (`--host 0.0.0.0`, no proxy in front): every connection
bounded. uvicorn's httptools protocol, with:

- a request head (request line and headers) of at most 16 KiB and 100 header lines, else
  431; counted as the bytes arrive, so a head that never ends is refused at 16 KiB too;
- a request that must arrive whole (head and body) within `request_timeout` seconds of its
  first byte, else 408 (a slow head) or the connection closed (a slow body: the route sees
  the client gone); a connection that sends nothing is closed after it too;
- at most `max_connections` open connections per process: an idle keep-alive one is
  closed to make room, else the new one is answered 503, with one warning a minute at most;
- a malformed request answered 400, and an upgrade request as plain HTTP, with a debug
  line: uvicorn's warnings would be a line in the log per scanner probe.

uvicorn's own options fall short here: `h11_max_incomplete_event_size` is h11's only, its
httptools protocol buffers a head of any size, its keep-alive timer is reset by every byte
(one a second keeps a connection forever), and `limit_concurrency` acts only once a request's
headers are in (a connection that never finishes them is never refused) and logs a warning
per request. What the checks cost a pixel: a few attribute writes per request; timeouts are
found by one sweep a second over the open connections, not by a timer per request.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import os
import resource
from dataclasses import asdict, dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dripper.web.metrics import CONNECTIONS

log = logging.getLogger("dripper.serve")

LIMITS_ENV = "DRIPPER_SERVE_LIMITS"  # how `--workers` processes get the limits
PROTOCOL = "dripper.web.limits:LimitedProtocol"  # uvicorn's `http=`, importable by each worker
LINGER = 2.0  # seconds a refused connection's further bytes are read and dropped (below)
LOG_EVERY = 60.0  # seconds between two "too many connections" warnings
FILES_KEPT = 64  # file descriptors left for the database, logs and the hit writer


@dataclass(frozen=True)
class Limits:
    """What one `dripper serve` process allows a client."""

    max_connections: int = 1000
    request_timeout: int = 20  # seconds for a whole request, head and body, to arrive
    keepalive_timeout: int = 5  # seconds an idle connection is kept after an answer
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100


_limits: Limits | None = None


def configure(limits: Limits) -> None:
    """Set the limits of this process and of the `--workers` processes it starts."""
    global _limits
    _limits = limits
    os.environ[LIMITS_ENV] = json.dumps(asdict(limits))


def current() -> Limits:
    """The limits `configure` set, here or in the process that started this one."""
    global _limits
    if _limits is None:
        given = os.environ.get(LIMITS_ENV)
        _limits = Limits(**json.loads(given)) if given else Limits()
    return _limits


def fit_to_file_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards what `wanted` connections need (the
    soft limit is often 1,024, the hard one far higher), and return how many connections
    fit under it. Past it, accept() fails and every new client waits, unanswered."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FILES_KEPT
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILES_KEPT))


class _HeadTooLarge(Exception):
    """Raised in the parser's callback; it comes out of feed_data as its __context__."""


class _Discard:
    """The parser of a refused connection: what still arrives is read and dropped."""

    def feed_data(self, data: bytes) -> None:
        pass


_DISCARD = _Discard()
# uvicorn's callbacks, called directly: cheaper than super() on every request.
_message_begin = HttpToolsProtocol.on_message_begin
_headers_complete = HttpToolsProtocol.on_headers_complete
_message_complete = HttpToolsProtocol.on_message_complete


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded (the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = current()
        self.sweeper = Sweeper.of(self.loop, self.connections)
        # Bytes of a request head not yet complete, counted per chunk; -1: not in a head.
        self.head = 0
        self.chunk = 0  # the size of the chunk being parsed
        # The sweep a request (or, on a new connection, the wait for one) began; None: the
        # request is all in, or the connection is between requests (uvicorn's keep-alive).
        self.since: int | None = None
        # Answered with a refusal and lingering until it closes: never idle, so never
        # "closed to make room" (which would let a newcomer past the limit).
        self.refusing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        sweeper = self.sweeper
        self.since = sweeper.tick
        if len(self.connections) > self.limits.max_connections and not sweeper.reclaim(self):
            sweeper.too_many(len(self.connections) - 1)
            self.refuse(503, "Service Unavailable: too many connections", "too_many_connections")

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but for the head's size and the log lines of a probe.
        self._unset_keepalive_if_required()
        self.chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # serve has no websockets (`ws="none"`): answered as plain HTTP. uvicorn warns
            # twice here, two lines in the log for each probe.
            log.debug("upgrade request answered as plain HTTP")
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self.refuse(431, "Request Header Fields Too Large", "head_too_large")
            else:  # from the open internet, a warning each would be a line per probe
                log.debug("malformed request: %s", exc)
                self.refuse(400, "Invalid HTTP request received.", "malformed")
            return
        if self.head >= 0:  # a head still unfinished after this chunk: never buffer more
            self.head += self.chunk
            if self.head > self.limits.max_head_bytes:
                self.refuse(431, "Request Header Fields Too Large", "head_too_large")

    def on_message_begin(self) -> None:
        self.head = 0
        self.since = self.sweeper.tick
        _message_begin(self)

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.headers) > limits.max_headers or (
            self.head + self.chunk > limits.max_head_bytes  # cheap: at most this many
            and self._head_bytes() > limits.max_head_bytes
        ):
            raise _HeadTooLarge
        self.head = -1
        _headers_complete(self)

    def on_message_complete(self) -> None:
        self.since = None
        _message_complete(self)

    def _head_bytes(self) -> int:
        """The head's size as sent (near enough: the request line's method and version)."""
        return len(self.url) + 16 + sum(len(n) + len(v) + 4 for n, v in self.headers)

    def too_slow(self) -> None:
        """The sweep found this request (or the wait for one) older than request_timeout."""
        self.since = None
        if self.head > 0:  # part of a head came: say why it ends
            self.refuse(408, "Request Timeout", "too_slow")
            return
        CONNECTIONS.refused["too_slow"] += 1
        # Nothing came yet, or the body is late: the route reading it sees the client gone.
        log.debug("request too slow: connection closed")
        self.transport.close()

    def refuse(self, status: int, text: str, reason: str) -> None:
        """Answer `status` and close: the answer goes out, what the client still sends is
        read and dropped for LINGER seconds (closing with unread bytes would reset the
        connection, and the client might never see the answer), then the connection ends."""
        CONNECTIONS.refused[reason] += 1
        log.debug("request refused: %d %s", status, text)
        self.refusing = True
        self.since = None
        self.head = -1
        self.parser = _DISCARD  # type: ignore[assignment]
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # the app's answer to an earlier request is under way
            return
        body = f"{text}\n".encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        transport.write(b"".join(head) + body)
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER, transport.close)


class Sweeper:
    """Once a second: the clock requests are timed by, and the ones too slow cut off."""

    _current: Sweeper | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop = loop
        self.connections = connections
        self.tick = 0
        self.refused = 0  # connections answered 503 since the last warning
        self.warned_at: float | None = None
        CONNECTIONS.open = lambda: len(connections)
        loop.call_later(1.0, self.sweep)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> Sweeper:
        """The sweeper of this process's server (one per event loop)."""
        found = cls._current
        if found is None or found.loop is not loop or found.connections is not connections:
            found = cls._current = cls(loop, connections)
        return found

    def sweep(self) -> None:
        self.tick += 1
        # A request stamped k is between tick - k - 1 and tick - k seconds old: cut it once
        # it is surely past request_timeout (so between it and a second more).
        oldest = self.tick - current().request_timeout
        for conn in list(self.connections):
            since = getattr(conn, "since", None)
            if since is not None and since < oldest:
                conn.too_slow()
        self.loop.call_later(1.0, self.sweep)

    def reclaim(self, newcomer: LimitedProtocol) -> bool:
        """Close one idle keep-alive connection to make room for `newcomer`, if any is."""
        for conn in self.connections:
            if (
                conn is not newcomer
                and not getattr(conn, "refusing", False)
                and getattr(conn, "since", 0) is None
                and getattr(conn, "head", 0) == -1
                and (conn.cycle is None or conn.cycle.response_complete)
                and not conn.transport.is_closing()
            ):
                conn.transport.close()
                return True
        return False

    def too_many(self, open_now: int) -> None:
        """One warning a minute at most, however many connections are refused."""
        self.refused += 1
        now = self.loop.time()
        if self.warned_at is not None and now - self.warned_at < LOG_EVERY:
            return
        since = "" if self.warned_at is None else f" ({self.refused:,} since the last warning)"
        log.warning(
            "%d connections open, the limit (--max-connections, [serve] max_connections): new "
            "ones are answered 503%s; this warning comes at most once a minute",
            open_now,
            since,
        )
        self.warned_at = now
        self.refused = 0

"""A daemon you can watch (DESIGN 14): `dripper run --metrics HOST:PORT` (or `[sending]
metrics`) serves, from a thread of its own,

    GET /metrics   Prometheus text: sends by outcome, the due backlog, retrying, ambiguous,
                   failed, pass duration, the reply mailbox's state, the last pass's time
    GET /healthz   200 {"status": "ok"} while passes complete; 503 when the last one
                   finished more than three ticks ago or the database does not answer

The daemon's loop reports each pass (`passed`); the HTTP thread only reads what it was told
and pings the database, so a scrape never waits on a pass.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.services.report import Report

STALE_TICKS = 3  # /healthz: a daemon whose last pass ended longer ago than this is stuck


def parse_address(value: str) -> tuple[str, int]:
    """`127.0.0.1:9464`, `:9464` (all interfaces is never the default: say 0.0.0.0)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--metrics {value!r}: expected HOST:PORT, like 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


class DaemonMetrics:
    """What the daemon's passes said, as Prometheus metrics and a health answer."""

    def __init__(
        self,
        tick_seconds: int,
        ping: Callable[[], None],
        progress: Callable[[], int] = lambda: 0,
    ) -> None:
        """`progress`: emails sent so far, read by /healthz so a long pass (a big
        newsletter) that keeps sending is not taken for a stuck one."""
        self.tick = tick_seconds
        self.ping = ping
        self.progress = progress
        self._seen_sent = 0
        self._moved: float | None = None  # when `progress` last moved
        self.registry = CollectorRegistry()
        r = self.registry
        self.sends = Counter(
            "dripper_sends", "Sends by outcome (sent, deferred, failed, ...)", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.enrolled = Counter("dripper_enrolled", "Enrollments made", registry=r)
        self.confirmations = Counter(
            "dripper_signup_confirmations", "Signup confirmation emails sent", registry=r
        )
        self.backlog = Gauge("dripper_due_backlog", "Sends due now, not yet sent", registry=r)
        self.retrying = Gauge("dripper_retrying", "Planned sends waiting for a retry", registry=r)
        self.ambiguous = Gauge(
            "dripper_ambiguous", "Sends that may have been delivered, awaiting retry", registry=r
        )
        self.failed = Gauge("dripper_failed", "Sends failed for good (ever)", registry=r)
        self.duration = Histogram(
            "dripper_pass_seconds",
            "How long a pass (plan, send, listen) took",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.mailbox_up = Gauge(
            "dripper_mailbox_up", "1 when the reply mailbox answered on the last pass", registry=r
        )
        self.last_pass = Gauge(
            "dripper_last_pass_timestamp_seconds", "When the last pass finished", registry=r
        )
        self.started = time.monotonic()
        self.finished: float | None = None  # monotonic time of the last pass's end
        self._server: ThreadingHTTPServer | None = None

    # --- told by the daemon ------------------------------------------------------------
    def passed(
        self, report: Report, seconds: float, counts: dict[str, int], *, mailbox: bool
    ) -> None:
        for outcome in ("sent", "deferred", "skipped", "cancelled", "failed", "ambiguous"):
            value = getattr(report, outcome)
            if value:
                self.sends.labels(outcome).inc(value)
        self.enrolled.inc(report.enrolled)
        self.confirmations.inc(report.confirmations)
        self.backlog.set(counts.get("due", 0))
        self.retrying.set(counts.get("retrying", 0))
        self.ambiguous.set(counts.get("ambiguous", 0))
        self.failed.set(counts.get("failed", 0))
        self.duration.observe(seconds)
        if mailbox:  # no mailbox configured: no series, no false alert
            self.mailbox_up.set(0 if report.mailbox else 1)
        self.last_pass.set(time.time())
        self.finished = time.monotonic()

    # --- asked over HTTP ---------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        sent = self.progress()
        if sent != self._seen_sent:
            self._seen_sent, self._moved = sent, now
        since = max(
            self.finished if self.finished is not None else self.started, self._moved or 0.0
        )
        age = now - since
        if age > STALE_TICKS * self.tick:
            return 503, {"status": "stuck", "last_pass_seconds_ago": round(age, 1)}
        try:
            self.ping()
        except Exception:
            return 503, {"status": "database unavailable"}
        return 200, {"status": "ok", "last_pass_seconds_ago": round(age, 1)}

    def serve(self, host: str, port: int) -> None:
        """Listen on HOST:PORT in a daemon thread; a port in use is one line, exit 2."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body = generate_latest(metrics.registry)
                    self._answer(200, body, CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    status, data = metrics.health()
                    self._answer(status, json.dumps(data).encode(), "application/json")
                else:
                    self._answer(404, b'{"error": "not found"}', "application/json")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds are not news

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise InputError(
                f"--metrics {host}:{port}: cannot listen there ({exc.strerror}): pick a free port"
            ) from None
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

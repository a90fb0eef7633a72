"""`/metrics` in the Prometheus text format (prometheus_client), one registry per app: hits
by kind and class, inbound mail by class, the hit queue, dropped hits, request latency,
where deliveries were looked up, open connections and requests refused by the limits.

Each `dripper serve` process counts its own (with `--workers`, scrape each, or sum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONNECTIONS", "CONTENT_TYPE_LATEST", "Metrics"]


class ConnectionCounts:
    """What the connection layer (dripper.web.limits) counts: it runs below the app, so
    plain numbers of this process, read when /metrics is rendered."""

    def __init__(self) -> None:
        self.refused = dict.fromkeys(
            ("head_too_large", "too_slow", "too_many_connections", "malformed"), 0
        )
        self.open: Callable[[], int] = lambda: 0


CONNECTIONS = ConnectionCounts()


class _ConnectionCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "dripper_requests_refused",
            "Requests refused before the app by serve's limits: head_too_large (431), "
            "too_slow (408 or closed), too_many_connections (503), malformed (400).",
            labels=["reason"],
        )
        for reason, count in CONNECTIONS.refused.items():
            refused.add_metric([reason], count)
        yield refused
        yield GaugeMetricFamily(
            "dripper_connections_open", "HTTP connections open now.", value=CONNECTIONS.open()
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dripper_hits",
            "Requests answered, by route kind (open, click, unsubscribe, answer, referral).",
            ["kind"],
            registry=self.registry,
        )
        self.stored = Counter(
            "dripper_hits_stored",
            "Opens and clicks written to the database.",
            registry=self.registry,
        )
        self.classes = Counter(
            "dripper_hit_classes",
            "Answers and unsubscribes by outcome; opens and clicks are classed when written.",
            ["kind", "class"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "dripper_hits_dropped",
            "Hits not written: the queue was full, or the process stopped with the database down.",
            registry=self.registry,
        )
        self.queue = Gauge(
            "dripper_hit_queue_depth", "Hits waiting to be written.", registry=self.registry
        )
        self.lookups = Counter(
            "dripper_delivery_lookups",
            "Pixels and redirects by where their delivery was found: memory (PostgreSQL "
            "announced it) or database (asked).",
            ["answer"],
            registry=self.registry,
        )
        self._counted = {"memory": 0, "database": 0}
        self.inbound = Counter(
            "dripper_inbound",
            "Inbound messages recorded, by class.",
            ["class"],
            registry=self.registry,
        )
        self.abandoned = Counter(
            "dripper_requests_abandoned",
            "Requests whose client went away before its body was all sent.",
            registry=self.registry,
        )
        self.registry.register(_ConnectionCollector())
        self.latency = Histogram(
            "dripper_request_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

    def lookups_now(self, memory: int, database: int) -> None:
        """Bring the lookup counter up to the directory's own counts."""
        for answer, total in (("memory", memory), ("database", database)):
            if total > self._counted[answer]:
                self.lookups.labels(answer).inc(total - self._counted[answer])
                self._counted[answer] = total

    def render(self) -> bytes:
        return generate_latest(self.registry)

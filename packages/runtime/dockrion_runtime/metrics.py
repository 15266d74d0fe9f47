"""Prometheus metrics, one registry per app (several apps may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

__all__ = ["RuntimeMetrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RuntimeMetrics:
    def __init__(self, agent: str, version: str) -> None:
        self.agent = agent
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dockrion_requests_total",
            "HTTP requests handled",
            ["agent", "version", "endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dockrion_request_latency_seconds",
            "Time to the end of the response",
            ["agent", "version", "endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.active = Gauge(
            "dockrion_active_requests", "Requests in progress", ["agent"], registry=self.registry
        )
        self.streams = Gauge(
            "dockrion_active_streams", "Open SSE streams", ["agent"], registry=self.registry
        )
        self.events = Counter(
            "dockrion_events_sent_total",
            "Stored events written to SSE streams",
            ["agent"],
            registry=self.registry,
        )
        self.websockets = Gauge(
            "dockrion_active_websockets",
            "Open WebSocket sessions",
            ["agent"],
            registry=self.registry,
        )
        self.websocket_sessions = Counter(
            "dockrion_websocket_sessions_total",
            "WebSocket sessions ended, by route and close code",
            ["agent", "endpoint", "code"],
            registry=self.registry,
        )
        self.websocket_events = Counter(
            "dockrion_websocket_events_sent_total",
            "Stored events sent as WebSocket messages",
            ["agent"],
            registry=self.registry,
        )
        # The queue of background runs (Redis backend): what waits, what workers hold, how
        # long a run waited for a worker, and the attempts after a worker died.
        self.queue_waiting = Gauge(
            "dockrion_queue_depth",
            "Queued runs no worker has taken yet (every instance's)",
            ["agent"],
            registry=self.registry,
        )
        self.queue_held = Gauge(
            "dockrion_queue_held",
            "Queued runs a worker holds (every instance's)",
            ["agent"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "dockrion_queue_wait_seconds",
            "Time from a run's submission to a worker of this process taking it",
            ["agent"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.queue_attempts = Counter(
            "dockrion_queue_attempts_total",
            "Runs this process took over from a worker that died, by what became of them: "
            "continued (from a checkpoint), retried (from the start), orphaned (ended)",
            ["agent", "outcome"],
            registry=self.registry,
        )
        self.version = version

    def exposition(self) -> Response:
        """The Prometheus text exposition of this app's registry."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

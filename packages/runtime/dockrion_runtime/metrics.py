"""Prometheus metrics, one registry per app (several apps may share a process).

`observability.metrics` switches families off: a family switched off is still counted
(the code that feeds it stays one path) but in no registry, so `/metrics` never shows it.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

__all__ = ["RuntimeMetrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Runs last longer than requests: up to `max_run_duration` (an hour by default).
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class RuntimeMetrics:
    def __init__(
        self, agent: str, version: str, families: Mapping[str, bool] | None = None
    ) -> None:
        self.agent = agent
        self.registry = CollectorRegistry()
        switches = families or {}

        def family(name: str) -> CollectorRegistry | None:
            return self.registry if switches.get(name, True) else None

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
            registry=family("latency"),
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
        self.queue_worker_wait = Histogram(
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
        # runs: every run, whatever its endpoint or wire format
        self.runs = Counter(
            "dockrion_runs_total",
            "Runs ended, by outcome (completed, failed, cancelled, timeout)",
            ["agent", "outcome"],
            registry=self.registry,
        )
        self.active_runs = Gauge(
            "dockrion_active_runs", "Runs whose agent is running", ["agent"], registry=self.registry
        )
        self.subscribers = Gauge(
            "dockrion_active_subscribers",
            "Subscriptions to background runs (SSE, WebSocket, AG-UI)",
            ["agent"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "dockrion_run_duration_seconds",
            "Time from the agent's start to the run's end",
            ["agent"],
            buckets=RUN_BUCKETS,
            registry=family("latency"),
        )
        self.queue_wait = Histogram(
            "dockrion_run_queue_wait_seconds",
            "Time from a run's acceptance to its agent's start (its thread's turn included)",
            ["agent"],
            buckets=RUN_BUCKETS,
            registry=family("latency"),
        )
        self.tokens = Counter(
            "dockrion_model_tokens_total",
            "Tokens of model calls, by model and type (input, output)",
            ["agent", "model", "type"],
            registry=family("tokens"),
        )
        self.cost = Counter(
            "dockrion_model_cost_total",
            "Cost of model calls by model, from observability.prices",
            ["agent", "model"],
            registry=family("cost"),
        )
        self.version = version

    def exposition(self) -> Response:
        """The Prometheus text exposition of this app's registry."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

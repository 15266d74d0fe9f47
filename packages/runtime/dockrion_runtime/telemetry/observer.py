"""Every run, seen once from start to end: its metrics, its usage per model, its caller's
budgets and, when tracing is on, its spans. The supervisor opens a `RunWatch` as a run's
agent starts and closes it with the outcome; nothing else of the run path knows about
telemetry."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any
from uuid import UUID

from dockrion_events import AuthContext

from ..metrics import RuntimeMetrics
from .callbacks import reset, run_handler
from .meter import UNKNOWN_MODEL, Prices, RunMeter
from .tracing import RunSpans, RunTracer, TraceOrigin
from .usage import Spending, UsageBook

__all__ = ["RunTelemetry", "RunWatch"]

log = logging.getLogger("dockrion.runtime")

OUTCOMES = ("completed", "failed", "cancelled", "timeout")


class RunTelemetry:
    """What every run of one app reports to, built once at start-up."""

    def __init__(
        self,
        agent: str,
        metrics: RuntimeMetrics,
        prices: Prices,
        tracer: RunTracer | None,
        usage: UsageBook,
    ) -> None:
        self.agent = agent
        self.metrics = metrics
        self.prices = prices
        self.tracer = tracer
        self.usage = usage
        # the label values never change: every run uses the same children
        self._outcomes = {name: metrics.runs.labels(agent, name) for name in OUTCOMES}
        self._active = metrics.active_runs.labels(agent)
        self._duration = metrics.run_duration.labels(agent)
        self._queue_wait = metrics.queue_wait.labels(agent)

    def watch(
        self,
        run_id: str,
        caller: AuthContext | None,
        *,
        accepted: float | None = None,
        origin: TraceOrigin | None = None,
        thread_id: str | None = None,
    ) -> RunWatch:
        """A run about to start its agent; `accepted` (a `time.time()`) is when it was
        accepted, when it waited for its start."""
        return RunWatch(self, run_id, caller, accepted, origin, thread_id)

    async def close(self) -> None:
        """Send the last spans (the exporter's own timeout bounds it), off the loop."""
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)

    def count_usage(self, meter: RunMeter) -> None:
        metrics, agent = self.metrics, self.agent
        for model, usage in meter.models.items():
            if usage.input_tokens:
                metrics.tokens.labels(agent, model, "input").inc(usage.input_tokens)
            if usage.output_tokens:
                metrics.tokens.labels(agent, model, "output").inc(usage.output_tokens)
            if usage.cost:
                metrics.cost.labels(agent, model).inc(usage.cost)


class RunWatch:
    """One run's telemetry: `begin` as the agent starts, `end` once with the outcome."""

    def __init__(
        self,
        telemetry: RunTelemetry,
        run_id: str,
        caller: AuthContext | None,
        accepted: float | None,
        origin: TraceOrigin | None,
        thread_id: str | None,
    ) -> None:
        self.telemetry = telemetry
        self.run_id = run_id
        self.caller = caller
        self.accepted = accepted
        self.meter = RunMeter(telemetry.prices)
        self.spending: Spending | None = None
        self.spans: RunSpans | None = None
        tracer = telemetry.tracer
        if tracer is not None:
            self.spans = tracer.run_spans(run_id, caller, thread_id, accepted, origin)
        self.traced = self.spans is not None
        self._token: contextvars.Token[Any] | None = None
        self._started = 0.0

    async def begin(self) -> None:
        """The agent starts now."""
        telemetry = self.telemetry
        self._started = time.perf_counter()
        if self.accepted is not None:
            telemetry._queue_wait.observe(max(0.0, time.time() - self.accepted))
        telemetry._active.inc()
        if self.caller is not None and telemetry.usage.budgets:
            self.spending = await telemetry.usage.spending(self.caller)
        self._token = run_handler(self)

    # --- what the run's LangChain calls report (callbacks.py) ------------------------------

    def model_used(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        cost = self.meter.add(model, input_tokens, output_tokens)
        if self.spending is not None:
            self.spending.check(self.meter.total)
        return cost

    def open_span(
        self, key: UUID, parent: UUID | None, name: str, attributes: dict[str, Any]
    ) -> None:
        if self.spans is not None:
            self.spans.open(key, parent, name, attributes)

    def close_span(
        self, key: UUID, attributes: dict[str, Any], error: BaseException | None = None
    ) -> None:
        if self.spans is not None:
            self.spans.close(key, attributes, error)

    # --- the end ---------------------------------------------------------------------------

    async def end(
        self,
        outcome: str,
        *,
        usage: Any = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """The run ended (`outcome` one of OUTCOMES); `usage` is the agent's own report
        (`metadata.usage`), counted when no model call was seen; `error` (code, message)."""
        reset(self._token)
        self._token = None
        telemetry = self.telemetry
        telemetry._active.dec()
        telemetry._outcomes[outcome].inc()
        telemetry._duration.observe(time.perf_counter() - self._started)
        meter = self.meter
        if not meter.models and isinstance(usage, dict):
            input_tokens = int(usage.get("input_tokens", 0) or 0)
            output_tokens = int(usage.get("output_tokens", 0) or 0)
            if input_tokens or output_tokens:
                meter.add(UNKNOWN_MODEL, input_tokens, output_tokens)
        telemetry.count_usage(meter)
        if self.spans is not None:
            self.spans.end(outcome, meter.total, error)
        await telemetry.usage.record(self.caller, meter.total)

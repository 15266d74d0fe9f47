"""One OpenTelemetry trace per run: the run's span (`invoke_agent <agent>`, from the run's
acceptance to its end, so its queue wait is inside), with spans for LangGraph nodes, model
calls and tool calls below it, following the GenAI semantic conventions.

A caller's `traceparent` header makes the run part of the caller's trace. The run span's
ids are chosen when the run is accepted and kept in the run's metadata (`trace`), so
whichever instance executes the run, streams it or resumes it later adds to the same
trace. Every string attribute passes the run's redaction (`policies.safety`).

A tracer exists only when an exporter is configured (exporters.py): without one the run
path makes no tracer call at all.
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dockrion_events import AuthContext

from .._version import __version__

__all__ = ["RunSpans", "RunTracer", "TraceOrigin", "parse_traceparent"]

log = logging.getLogger("dockrion.runtime")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# The longest string attribute sent (tool arguments and results may be long).
MAX_ATTRIBUTE_CHARS = 4096

_preset: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "dockrion_preset_span", default=None
)
_ids = random.Random()  # noqa: S311 - identifiers, not secrets


def parse_traceparent(value: str | None) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C `traceparent`, or None when it is not one."""
    match = _TRACEPARENT.match((value or "").strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(match.group(3), 16)


def traceparent(trace_id: int, span_id: int, flags: int = 1) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


@dataclass(frozen=True, slots=True)
class TraceOrigin:
    """Where a run's span sits: its own ids, chosen at acceptance, and its parent (the
    caller's span, or the span of the run it resumes), as `traceparent` strings."""

    span: str
    parent: str | None = None

    def metadata(self) -> dict[str, str]:
        """What the run's stored metadata keeps under `trace`."""
        return {"traceparent": self.span, **({"parent": self.parent} if self.parent else {})}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TraceOrigin | None:
        trace = metadata.get("trace")
        if not isinstance(trace, dict) or parse_traceparent(trace.get("traceparent")) is None:
            return None
        parent = trace.get("parent")
        return cls(str(trace["traceparent"]), str(parent) if parent else None)


class RunTracer:
    """The tracer of one app (its own `TracerProvider`, never the global one)."""

    def __init__(
        self, provider: Any, agent: str, redact: Callable[[str], str] | None = None
    ) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.agent = agent
        self.redact = redact
        self.tracer = provider.get_tracer("dockrion_runtime")
        self._trace = trace

    def origin(self, parent: str | None) -> TraceOrigin:
        """Ids for a run accepted now, in the trace of `parent` (a `traceparent`) if valid."""
        parsed = parse_traceparent(parent)
        trace_id = parsed[0] if parsed is not None else _ids.getrandbits(128) or 1
        return TraceOrigin(
            traceparent(trace_id, _ids.getrandbits(64) or 1),
            parent if parsed is not None else None,
        )

    def context_of(self, value: str | None) -> Any:
        """An OpenTelemetry context whose current span is the one `value` names."""
        parsed = parse_traceparent(value)
        if parsed is None:
            return None
        trace = self._trace
        span_context = trace.SpanContext(
            parsed[0], parsed[1], is_remote=True, trace_flags=trace.TraceFlags(parsed[2])
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context))

    def clean(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes as sent: strings redacted and cut to `MAX_ATTRIBUTE_CHARS`."""
        cleaned: dict[str, Any] = {}
        for name, value in attributes.items():
            if isinstance(value, str):
                value = self._text(value)
            elif isinstance(value, list | tuple):
                value = [self._text(v) if isinstance(v, str) else v for v in value]
            cleaned[name] = value
        return cleaned

    def _text(self, value: str) -> str:
        value = value[:MAX_ATTRIBUTE_CHARS]
        return self.redact(value) if self.redact is not None else value

    def start(
        self,
        name: str,
        *,
        parent: Any = None,
        attributes: Mapping[str, Any] | None = None,
        kind: str = "INTERNAL",
        start_time: int | None = None,
        span_id: tuple[int, int] | None = None,
    ) -> Any:
        """A span (its ids preset when `span_id` is (trace id, span id))."""
        token = _preset.set(span_id) if span_id is not None else None
        try:
            return self.tracer.start_span(
                name,
                context=parent,
                kind=getattr(self._trace.SpanKind, kind),
                attributes=self.clean(attributes or {}),
                start_time=start_time,
            )
        finally:
            if token is not None:
                _preset.reset(token)

    def run_spans(
        self,
        run_id: str,
        caller: AuthContext | None,
        thread_id: str | None,
        accepted: float | None,
        origin: TraceOrigin | None,
    ) -> RunSpans:
        """The spans of one run, its run span open from `accepted` (a `time.time()`)."""
        origin = origin or self.origin(None)
        ids = parse_traceparent(origin.span)
        assert ids is not None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self.agent,
            "dockrion.run_id": run_id,
        }
        principal = caller.principal_id if caller is not None else None
        if principal:
            attributes["dockrion.caller"] = principal
            attributes["user.id"] = principal
        if thread_id:
            attributes["dockrion.thread_id"] = thread_id
            attributes["gen_ai.conversation.id"] = thread_id
            attributes["session.id"] = thread_id
        span = self.start(
            f"invoke_agent {self.agent}",
            parent=self.context_of(origin.parent),
            attributes=attributes,
            start_time=int(accepted * 1e9) if accepted is not None else None,
            span_id=(ids[0], ids[1]),
        )
        return RunSpans(self, span)

    def subscription(
        self,
        run_id: str,
        metadata: Mapping[str, Any],
        start: int,
        release: Callable[[], None],
    ) -> Callable[[], None]:
        """A `stream_run` span for one subscription to a run, a child of the run's span
        (from its metadata, so on any instance); returns `release`, ending it first."""
        origin = TraceOrigin.from_metadata(metadata)
        span = self.start(
            "stream_run",
            parent=self.context_of(origin.span if origin else None),
            attributes={"dockrion.run_id": run_id, "dockrion.from_sequence": start},
            kind="SERVER",
        )

        def ended() -> None:
            span.end()
            release()

        return ended

    def flush(self, timeout_millis: int = 10_000) -> bool:
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.provider.shutdown()


class RunSpans:
    """The spans of one run: the run span and its children, keyed by LangChain's run ids
    (callbacks of one run may come from several threads: changes are locked)."""

    def __init__(self, tracer: RunTracer, span: Any) -> None:
        self.tracer = tracer
        self.span = span
        self._spans: dict[UUID, Any] = {}
        self._parents: dict[UUID, UUID | None] = {}
        self._lock = threading.Lock()
        span.add_event("agent started")

    def _parent_span(self, parent: UUID | None) -> Any:
        seen = 0
        while parent is not None and seen < 1000:
            span = self._spans.get(parent)
            if span is not None:
                return span
            parent = self._parents.get(parent)
            seen += 1
        return self.span

    def open(self, key: UUID, parent: UUID | None, name: str, attributes: dict[str, Any]) -> None:
        """A child span (`name` empty: none, but its children find their parent through
        it)."""
        trace = self.tracer._trace
        with self._lock:
            self._parents[key] = parent
            if not name:
                return
            above = self._parent_span(parent)
        kind = (
            "CLIENT"
            if attributes.get("gen_ai.operation.name") in ("chat", "text_completion")
            else "INTERNAL"
        )
        span = self.tracer.start(
            name, parent=trace.set_span_in_context(above), attributes=attributes, kind=kind
        )
        with self._lock:
            self._spans[key] = span

    def close(
        self, key: UUID, attributes: dict[str, Any], error: BaseException | None = None
    ) -> None:
        with self._lock:
            self._parents.pop(key, None)
            span = self._spans.pop(key, None)
        if span is None:
            return
        if attributes:
            span.set_attributes(self.tracer.clean(attributes))
        if error is not None:
            self.fail(span, type(error).__name__, str(error))
        span.end()

    def fail(self, span: Any, error_type: str, message: str) -> None:
        """Record an error as the conventions say: `error.type`, the status, an event."""
        status = self.tracer._trace.Status
        code = self.tracer._trace.StatusCode.ERROR
        text = self.tracer._text(message)
        span.set_attribute("error.type", error_type)
        span.set_status(status(code, text))
        span.add_event("exception", {"exception.type": error_type, "exception.message": text})

    def end(self, outcome: str, usage: Any, error: tuple[str, str] | None) -> None:
        """End the run span (and any child left open, such as a cancelled tool call)."""
        with self._lock:
            left = list(self._spans.values())
            self._spans.clear()
            self._parents.clear()
        for span in left:
            span.end()
        span = self.span
        span.set_attribute("dockrion.outcome", outcome)
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        if usage.cost:
            span.set_attribute("gen_ai.usage.cost", usage.cost)
        if error is not None:
            self.fail(span, error[0], error[1])
        span.end()


def preset_ids() -> Any:
    """The SDK's random id generator, but taking the ids a run's span was given at
    acceptance (`RunTracer.start(span_id=...)`)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetIds(RandomIdGenerator):
        def generate_span_id(self) -> int:
            preset = _preset.get()
            return preset[1] if preset is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            preset = _preset.get()
            return preset[0] if preset is not None else super().generate_trace_id()

    return PresetIds()


def build_tracer(
    agent: str,
    exporters: list[Any],
    env: Mapping[str, str],
    redact: Callable[[str], str] | None,
) -> RunTracer:
    """A tracer sending to `exporters` (not empty), each through a batch processor."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": env.get("OTEL_SERVICE_NAME") or agent,
            "service.version": __version__,
        }
    )
    provider = TracerProvider(resource=resource, id_generator=preset_ids())
    delay = env.get("OTEL_BSP_SCHEDULE_DELAY")
    for exporter in exporters:
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=float(delay) if delay else None)
        )
    return RunTracer(provider, agent, redact)

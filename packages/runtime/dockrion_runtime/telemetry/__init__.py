"""What runs cost and do, seen from outside: metrics per model, usage and budgets per
caller, OpenTelemetry traces (and Langfuse). The supervisor reports each run to a
`RunTelemetry` (observer.py); LangChain's callbacks report model and tool calls
(callbacks.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dockrion_events import EventBackend

from ..engine.redaction import RedactPattern, redact_text
from ..metrics import RuntimeMetrics
from ..settings import RuntimeSettings, SettingsError
from .exporters import span_exporters
from .meter import Prices, RunMeter
from .observer import RunTelemetry, RunWatch
from .tracing import RunTracer, TraceOrigin, build_tracer
from .usage import BudgetedSlots, UsageBook

__all__ = [
    "BudgetedSlots",
    "Prices",
    "RunMeter",
    "RunTelemetry",
    "RunTracer",
    "RunWatch",
    "TraceOrigin",
    "UsageBook",
    "run_telemetry",
    "tracer_for",
]


def run_telemetry(
    settings: RuntimeSettings,
    metrics: RuntimeMetrics,
    tracer: RunTracer | None,
    backend: Callable[[], EventBackend | None],
) -> RunTelemetry:
    """What every run of the app reports to: its metrics, the usage and budgets of its
    callers (kept in `backend()`, the events backend once it is up) and the tracer."""
    observability = settings.spec.observability
    policies = settings.spec.policies
    usage = UsageBook(list(policies.budgets) if policies is not None else [], backend)
    prices = Prices(observability.prices if observability is not None else {})
    return RunTelemetry(settings.name, metrics, prices, tracer, usage)


def tracer_for(settings: RuntimeSettings, env: Mapping[str, str]) -> RunTracer | None:
    """The app's tracer, or None when tracing is off or has nowhere to go (no exporter
    configured): then no span is ever made. Raises SettingsError for a configuration that
    cannot work (a missing Langfuse key, the SDK not installed, gRPC asked for)."""
    observability = settings.spec.observability
    if observability is not None and not observability.tracing:
        if observability.langfuse is not None and observability.langfuse.enabled:
            raise SettingsError(
                "observability.langfuse sends traces, and observability.tracing is false; "
                "remove one of them"
            )
        return None
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = span_exporters(env, observability.langfuse if observability else None)
    if not exporters:
        return None
    policies = settings.spec.policies
    safety = policies.safety if policies is not None else None
    patterns = [RedactPattern(p) for p in safety.redact_patterns] if safety else []

    def redact(text: str) -> str:
        return redact_text(patterns, text)[0]

    return build_tracer(settings.name, exporters, env, redact if patterns else None)

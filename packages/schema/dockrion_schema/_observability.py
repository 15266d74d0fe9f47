"""The `observability` section of a Dockfile v1: tracing, Langfuse, logging, metrics, the
price table of models and how much of an agent's errors callers see."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ._fields import _Section

__all__ = ["LangfuseConfig", "ModelPrice", "Observability"]

# The metric families `observability.metrics` switches on and off.
METRIC_FAMILIES = ("latency", "tokens", "cost")


def _known_families(value: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(value) - set(METRIC_FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown metric families {', '.join(unknown)}; the switches are "
            f"{', '.join(METRIC_FAMILIES)}"
        )
    return {**dict.fromkeys(METRIC_FAMILIES, True), **value}


class ModelPrice(_Section):
    """What a model costs, in one currency of your choice, per million tokens."""

    # per million input (prompt) tokens
    input: Annotated[float, Field(ge=0)] = 0.0
    # per million output (completion) tokens
    output: Annotated[float, Field(ge=0)] = 0.0


class LangfuseConfig(_Section):
    """Send the run traces to a Langfuse project as well (its OpenTelemetry endpoint)."""

    enabled: bool = True
    # Langfuse's address: Langfuse Cloud (EU) by default; the US region is
    # https://us.cloud.langfuse.com, a self-hosted Langfuse its own URL. None: the
    # LANGFUSE_HOST environment variable, else Langfuse Cloud.
    host: str | None = None
    # The project's keys. None: the LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY environment
    # variables (the recommended place: a key written here is in the Dockfile).
    public_key: str | None = None
    secret_key: str | None = None


class Observability(_Section):
    # Send the same traces to Langfuse: `langfuse: {}` with the keys in the environment.
    langfuse: LangfuseConfig | None = None
    # OpenTelemetry spans for every run (run, LangGraph nodes, model and tool calls), sent
    # when an exporter is configured with the standard OTEL_* environment variables (or
    # `langfuse` is set); nothing is sent and no connection made otherwise.
    tracing: bool = True
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    # Metric families on /metrics: latency (request, run and queue-wait histograms), tokens
    # (tokens per agent and model), cost (cost per agent and model, from `prices`).
    metrics: Annotated[dict[str, bool], AfterValidator(_known_families)] = Field(
        default_factory=lambda: dict.fromkeys(METRIC_FAMILIES, True)
    )
    # Model name (as the provider reports it, e.g. gpt-4o-mini) -> its price per million
    # tokens: the cost metrics, per-caller usage and cost budgets are computed from it.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # Callers see an agent's exception message only when this is switched on; by default
    # they get its type, a stable code and the request id, and the message goes to the log.
    verbose_errors: bool = False

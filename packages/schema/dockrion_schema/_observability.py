"""The `observability` section of a Dockfile v1: tracing, logging, metrics and how much
of an agent's errors callers see."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._fields import _Section

__all__ = ["Observability"]


class Observability(_Section):
    langfuse: dict[str, str] | None = None
    tracing: bool = True
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    metrics: dict[str, bool] = Field(
        default_factory=lambda: {"latency": True, "tokens": True, "cost": True}
    )
    # Callers see an agent's exception message only when this is switched on; by default
    # they get its type, a stable code and the request id, and the message goes to the log.
    verbose_errors: bool = False

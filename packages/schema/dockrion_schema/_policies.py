"""The `policies` section of a Dockfile v1: the tools an agent may call, the safety
rules applied to what it receives and emits, and the daily budgets of callers."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ._fields import _positive, _Section
from ._redaction import stream_shape

__all__ = ["Budget", "Policies", "SafetyPolicy", "ToolPolicy"]


def _regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        stream_shape(pattern)  # streamed text is redacted too: refuse what it cannot hold
    return patterns


class ToolPolicy(_Section):
    allowed: list[str] = Field(default_factory=list)
    deny_by_default: bool = True


class SafetyPolicy(_Section):
    redact_patterns: Annotated[list[str], AfterValidator(_regexes)] = Field(default_factory=list)
    max_output_chars: Annotated[int | None, AfterValidator(_positive)] = None
    block_prompt_injection: bool = False
    halt_on_violation: bool = False


class Budget(_Section):
    """What one caller may spend per day (UTC), in tokens, in cost or both: a run is refused
    (429 BUDGET_EXHAUSTED) once it is spent, and a run that crosses it is stopped (an error
    event, code BUDGET_EXCEEDED, naming the budget)."""

    # named in refusals, error events and GET /usage
    name: Annotated[str, Field(min_length=1, max_length=64)]
    # input and output tokens of every model call, together
    tokens_per_day: Annotated[int, Field(ge=1)] | None = None
    # in the currency of `observability.prices`
    cost_per_day: Annotated[float, Field(gt=0)] | None = None
    # only callers with this role (auth.roles, or "default"); none: every caller. Each caller
    # has the whole budget to itself.
    role: str | None = None

    @model_validator(mode="after")
    def _limits_something(self) -> Budget:
        if self.tokens_per_day is None and self.cost_per_day is None:
            raise ValueError(
                f"budget {self.name!r} limits nothing; set tokens_per_day, cost_per_day or both"
            )
        return self


def _distinct_names(budgets: list[Budget]) -> list[Budget]:
    names = [budget.name for budget in budgets]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"budget names must differ; repeated: {', '.join(repeated)}")
    return budgets


class Policies(_Section):
    tools: ToolPolicy | None = None
    safety: SafetyPolicy | None = None
    # Daily spending limits per caller.
    budgets: Annotated[list[Budget], AfterValidator(_distinct_names)] = Field(default_factory=list)

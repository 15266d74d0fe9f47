"""The `policies` section of a Dockfile v1: the tools an agent may call and the safety
rules applied to what it receives and emits."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from ._fields import _positive, _Section
from ._redaction import stream_shape

__all__ = ["Policies", "SafetyPolicy", "ToolPolicy"]


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


class Policies(_Section):
    tools: ToolPolicy | None = None
    safety: SafetyPolicy | None = None

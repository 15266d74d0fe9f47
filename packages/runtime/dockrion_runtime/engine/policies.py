"""The Dockfile's `policies:`, enforced in one order on every run:

input check (the prompt-injection heuristic of `injection.py`, before the agent runs,
when asked for) -> agent -> redaction ->
truncation (`max_output_chars`) -> the strict output check (`io_schema.strict`).

Redaction (`redaction.py`) rewrites every string of the output and of every event a run
emits, tokens as a stream; with `halt_on_violation` a match fails the request or run with
POLICY_VIOLATION instead, and nothing that matched is sent. `max_output_chars` cuts the
output and the streamed token text alike. The tool policy answers
`context.is_tool_allowed(name)` and blocks LangGraph tool calls to denied tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dockrion_schema import Policies, SafetyPolicy, ToolPolicy

from .injection import looks_like_injection
from .redaction import (
    REDACTED,
    PolicyViolationError,
    RedactPattern,
    RunRedaction,
    redact_text,
)

__all__ = [
    "REDACTED",
    "OutputPolicy",
    "PolicyViolationError",
    "SafetyPolicies",
]


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, object keys included."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                found.append(str(key))
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return found


class OutputPolicy:
    """Redaction then truncation of an agent's output (already in its JSON form), and the
    same for what each run streams (`run_redaction`)."""

    def __init__(self, safety: SafetyPolicy) -> None:
        self.patterns = [RedactPattern(pattern) for pattern in safety.redact_patterns]
        self.max_chars = safety.max_output_chars
        self.halt = safety.halt_on_violation

    def apply(self, output: Any) -> Any:
        return self._truncate(self._redact(output))

    def run_redaction(self) -> RunRedaction:
        return RunRedaction(self.patterns, self.halt, self.max_chars)

    def redact_stored(self, value: Any) -> Any:
        """`value` with every match replaced, never refused (what is stored, not sent)."""
        if isinstance(value, str):
            return redact_text(self.patterns, value)[0]
        if isinstance(value, list):
            return [self.redact_stored(item) for item in value]
        if isinstance(value, dict):
            return {self.redact_stored(str(k)): self.redact_stored(v) for k, v in value.items()}
        return value

    def _redact_text(self, text: str) -> str:
        redacted, matched = redact_text(self.patterns, text)
        if matched and self.halt:
            raise PolicyViolationError(
                "Agent output matched a redaction pattern and policies.safety."
                "halt_on_violation is on"
            )
        return redacted

    def _redact(self, value: Any) -> Any:
        if not self.patterns:
            return value
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, list):
            return [self._redact(item) for item in value]
        if isinstance(value, dict):
            return {self._redact_text(str(k)): self._redact(v) for k, v in value.items()}
        return value

    def _truncate(self, value: Any) -> Any:
        limit = self.max_chars
        if limit is None:
            return value
        if isinstance(value, str):
            return value[:limit]
        text = json.dumps(value, ensure_ascii=False)
        if len(text) <= limit:
            return value
        cut = text[:limit]
        try:
            return json.loads(cut)
        except ValueError:
            return {"output": cut, "_truncated": True}


class SafetyPolicies:
    """Everything `policies:` asks of a run, built once at start-up."""

    def __init__(self, policies: Policies | None) -> None:
        safety = policies.safety if policies is not None else None
        tools = policies.tools if policies is not None else None
        self.output = OutputPolicy(safety) if safety is not None else None
        # A heuristic, run only when the Dockfile asks for it (`block_prompt_injection:
        # true`): it refuses inputs, so it is never on by surprise.
        self.block_injection = safety is not None and safety.block_prompt_injection
        self.tools: ToolPolicy | None = tools

    def check_input(self, payload: Any) -> None:
        if not self.block_injection:
            return
        if looks_like_injection("\n".join(_strings(payload))):
            raise PolicyViolationError(
                "The input looks like a prompt injection and was refused "
                "(policies.safety.block_prompt_injection); the agent did not run"
            )

    def apply_output(self, output: Any) -> Any:
        return output if self.output is None else self.output.apply(output)

    def redact_stored(self, value: Any) -> Any:
        """What the runtime stores about a run (a thread's record), redacted."""
        return value if self.output is None else self.output.redact_stored(value)

    def run_redaction(self) -> RunRedaction | None:
        """A run's redaction of what it emits (None without a `safety` section)."""
        return None if self.output is None else self.output.run_redaction()

    def tool_check(self) -> Callable[[str], bool] | None:
        tools = self.tools
        if tools is None:
            return None
        if not tools.deny_by_default:
            return lambda name: True
        allowed = frozenset(tools.allowed)
        return allowed.__contains__

"""The Dockfile's `policies:`, enforced in one order on every run:

input check (the prompt-injection heuristic of `injection.py`, before the agent runs,
when asked for) -> agent -> redaction ->
truncation (`max_output_chars`) -> the strict output check (`io_schema.strict`).

Redaction rewrites every string of the output (`/invoke`, `complete.output`, the output
of `GET /runs/{id}`) and the streamed tokens; a secret split over several tokens is still
caught because the token stream holds back as much text as the longest match of the
patterns needs (see `TokenRedactor`). With `halt_on_violation` a match fails the request
or run with POLICY_VIOLATION instead of being redacted. The tool policy answers
`context.is_tool_allowed(name)` and blocks LangGraph tool calls to denied tools.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from dockrion_schema import Policies, SafetyPolicy, ToolPolicy

from ..errors import RuntimeHTTPError
from .injection import looks_like_injection

__all__ = [
    "REDACTED",
    "UNBOUNDED_HOLD",
    "OutputPolicy",
    "PolicyViolationError",
    "SafetyPolicies",
    "TokenRedactor",
]

REDACTED = "[REDACTED]"

# The regex parser (private, untyped) knows the longest match a pattern can make.
_sre_parse: Any = importlib.import_module("re._parser")

# A pattern with no longest match (`sk-[a-z0-9]+`) makes the token stream hold back this
# many characters; a match that long or shorter is caught however it is split.
UNBOUNDED_HOLD = 256


class PolicyViolationError(RuntimeHTTPError):
    """400 POLICY_VIOLATION: the input, or the output under `halt_on_violation`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "POLICY_VIOLATION")


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


def _hold_for(patterns: list[re.Pattern[str]]) -> int:
    """Characters to hold back in a token stream: one less than the longest match any
    pattern can make (UNBOUNDED_HOLD when a pattern has no longest match)."""
    widest = 0
    for pattern in patterns:
        try:
            width = _sre_parse.parse(pattern.pattern, pattern.flags).getwidth()[1]
        except Exception:  # the private parser changed: hold the safe amount
            return UNBOUNDED_HOLD
        if width >= _sre_parse.MAXREPEAT or width > UNBOUNDED_HOLD:
            return UNBOUNDED_HOLD
        widest = max(widest, width)
    return max(widest - 1, 0)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping matches (of several patterns) as one span each."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class TokenRedactor:
    """Redacts a run's token stream. `feed` releases the text no match can still reach:
    everything except the last `hold` characters and any match that touches the end of
    what has arrived (it may still grow); `flush` releases the rest before the run's
    terminal event. Called from the loop and from worker threads alike."""

    def __init__(self, patterns: list[re.Pattern[str]], hold: int, halt: bool) -> None:
        self._patterns = patterns
        self.hold = hold
        self._halt = halt
        self._buffer = ""
        self._halted = False
        self._lock = threading.Lock()

    def feed(self, text: str) -> str:
        with self._lock:
            self._buffer += text
            return self._release(final=False)

    def flush(self) -> str:
        with self._lock:
            return self._release(final=True)

    def _release(self, final: bool) -> str:
        if self._halted:
            return ""
        buffer = self._buffer
        spans = _merged(
            (m.start(), m.end())
            for pattern in self._patterns
            for m in pattern.finditer(buffer)
            if m.end() > m.start()
        )
        if spans and self._halt:
            self._halted = True
            self._buffer = ""
            raise PolicyViolationError(
                "Agent output matched a redaction pattern and policies.safety."
                "halt_on_violation is on"
            )
        cut = len(buffer) if final else max(len(buffer) - self.hold, 0)
        moved = True
        while moved and not final:
            moved = False
            for start, end in spans:
                if start < cut and (end > cut or end == len(buffer)):
                    cut, moved = start, True
        released: list[str] = []
        position = 0
        for start, end in spans:
            if end > cut:
                break
            released.append(buffer[position:start])
            released.append(REDACTED)
            position = end
        released.append(buffer[position:cut])
        self._buffer = buffer[cut:]
        return "".join(released)


class OutputPolicy:
    """Redaction then truncation of an agent's output (already in its JSON form)."""

    def __init__(self, safety: SafetyPolicy) -> None:
        self.patterns = [re.compile(pattern) for pattern in safety.redact_patterns]
        self.max_chars = safety.max_output_chars
        self.halt = safety.halt_on_violation
        self.hold = _hold_for(self.patterns)

    def apply(self, output: Any) -> Any:
        return self._truncate(self._redact(output))

    def token_filter(self) -> TokenRedactor | None:
        if not self.patterns:
            return None
        return TokenRedactor(self.patterns, self.hold, self.halt)

    def _redact_text(self, text: str) -> str:
        for pattern in self.patterns:
            if self.halt and pattern.search(text):
                raise PolicyViolationError(
                    "Agent output matched a redaction pattern and policies.safety."
                    "halt_on_violation is on"
                )
            text = pattern.sub(REDACTED, text)
        return text

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

    def token_filter(self) -> TokenRedactor | None:
        return None if self.output is None else self.output.token_filter()

    def tool_check(self) -> Callable[[str], bool] | None:
        tools = self.tools
        if tools is None:
            return None
        if not tools.deny_by_default:
            return lambda name: True
        allowed = frozenset(tools.allowed)
        return allowed.__contains__

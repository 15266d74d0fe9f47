"""Which events a stream carries: presets, explicit lists and custom names.

Presets: `minimal` = mandatory only; `chat` = `token`; `debug` = `token`, `step`, `progress`,
`checkpoint`, `heartbeat`, `tool_call`, `tool_result`; `all` (or no config) = every built-in
type and every custom event.
`started`, `complete`, `error` and `cancelled` always pass. A `Redaction` (a server's)
rewrites what the events that pass carry: the token text as a stream, every other field
whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from .models import CONFIGURABLE_EVENT_TYPES, MANDATORY_EVENT_TYPES

__all__ = [
    "CUSTOM_NAME_RE",
    "PRESETS",
    "EventsFilter",
    "Redaction",
    "TokenFilter",
    "custom_event_name",
]

# checked with fullmatch: `$` alone also matches before a trailing newline
CUSTOM_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PRESETS: dict[str, frozenset[str]] = {
    "minimal": frozenset(),
    "chat": frozenset({"token"}),
    "debug": frozenset(
        {"token", "step", "progress", "checkpoint", "heartbeat", "tool_call", "tool_result"}
    ),
    "all": frozenset(CONFIGURABLE_EVENT_TYPES | {"custom"}),
}


def custom_event_name(event_type: str) -> str:
    """`"custom:x"` or `"x"` -> `"x"`, validated."""
    name = event_type.removeprefix("custom:")
    if not CUSTOM_NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid custom event name {event_type!r}: names match ^[a-zA-Z_][a-zA-Z0-9_]*$ "
            "(e.g. 'fraud_check' or 'custom:fraud_check')"
        )
    return name


class EventsFilter:
    """Decides which event types reach subscribers; built from `streaming.events.allowed`."""

    def __init__(self, config: str | Iterable[str] | None = None) -> None:
        self._config = config if config is None or isinstance(config, str) else list(config)
        builtins: set[str] = set()
        customs: set[str] = set()
        all_custom = False
        if config is None:
            builtins, all_custom = set(CONFIGURABLE_EVENT_TYPES), True
        elif isinstance(config, str):
            if config not in PRESETS:
                raise ValueError(f"Unknown events preset {config!r}; presets: {', '.join(PRESETS)}")
            preset = PRESETS[config]
            builtins, all_custom = set(preset - {"custom"}), "custom" in preset
        else:
            for item in config:
                if item in CONFIGURABLE_EVENT_TYPES:
                    builtins.add(item)
                elif item in MANDATORY_EVENT_TYPES:
                    continue
                elif item == "custom":
                    all_custom = True
                elif item.startswith("custom:"):
                    customs.add(custom_event_name(item))
                else:
                    raise ValueError(
                        f"unknown event type {item!r}; valid: "
                        f"{', '.join(sorted(CONFIGURABLE_EVENT_TYPES))}, custom, custom:<name>"
                    )
        self._builtins = frozenset(builtins)
        self._customs = frozenset(customs)
        self._all_custom = all_custom

    def is_allowed(self, event_type: str, custom_event_name: str | None = None) -> bool:
        if event_type in MANDATORY_EVENT_TYPES:
            return True
        if event_type in self._builtins:
            return True
        if event_type == "custom" or custom_event_name is not None:
            return self._all_custom or (custom_event_name or "") in self._customs
        if event_type.startswith("custom:"):
            return self._all_custom or event_type[7:] in self._customs
        return False

    def allows_custom(self, name: str) -> bool:
        return self._all_custom or name in self._customs

    @property
    def allows_tokens(self) -> bool:
        return "token" in self._builtins

    @property
    def allows_steps(self) -> bool:
        return "step" in self._builtins

    @property
    def allows_progress(self) -> bool:
        return "progress" in self._builtins

    @property
    def allows_checkpoints(self) -> bool:
        return "checkpoint" in self._builtins

    @property
    def allows_heartbeats(self) -> bool:
        return "heartbeat" in self._builtins

    @property
    def allows_all_custom(self) -> bool:
        return self._all_custom

    @property
    def allows_any_custom(self) -> bool:
        return self._all_custom or bool(self._customs)

    def get_allowed_events(self) -> set[str]:
        allowed = set(MANDATORY_EVENT_TYPES) | set(self._builtins)
        allowed |= {f"custom:{name}" for name in self._customs}
        if self._all_custom:
            allowed.add("custom")
        return allowed

    def get_langgraph_stream_modes(self) -> list[str]:
        modes: list[str] = []
        if self.allows_tokens:
            modes.append("messages")
        if self.allows_steps:
            modes.append("updates")
        if self.allows_progress or self.allows_checkpoints or self.allows_any_custom:
            modes.append("custom")
        return modes or ["values"]

    def is_native_event_allowed(self, langgraph_mode: str, inner_type: str = "") -> bool:
        if langgraph_mode == "messages":
            return self.allows_tokens
        if langgraph_mode == "updates":
            return self.allows_steps
        if langgraph_mode == "values":
            return True
        if langgraph_mode == "custom":
            if inner_type in CONFIGURABLE_EVENT_TYPES:
                return inner_type in self._builtins
            return self.allows_custom(inner_type.removeprefix("custom:"))
        return False

    def __repr__(self) -> str:
        if self._config is None:
            return "EventsFilter(all)"
        if isinstance(self._config, str):
            return f"EventsFilter(preset={self._config!r})"
        return f"EventsFilter({self._config!r})"


class TokenFilter(Protocol):
    """Rewrites streamed token text before it is logged (a server's redaction): `feed`
    returns the text that may go out now and may hold some back; `flush` returns what is
    held, and is called once before the terminal event. Called from any thread."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


class Redaction(TokenFilter, Protocol):
    """A server's rewriting of everything a run emits, before it is numbered and logged:
    `feed` / `flush` for the token text (a stream, see `TokenFilter`), `scrub` for the
    value of every other field of every event (custom events' data, tool arguments and
    results, progress messages, outputs, errors). `scrub` may raise to refuse the event
    (nothing of it is logged); with `may_refuse=False` (the error that ends a run) it
    rewrites only."""

    def scrub(self, value: Any, *, may_refuse: bool = True) -> Any: ...

"""Event builders: each check their arguments now and return `build(sequence) -> event`,
called once the event has its number."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .filter import custom_event_name
from .models import (
    CONFIGURABLE_EVENT_TYPES,
    MANDATORY_EVENT_TYPES,
    BaseEvent,
    CancelledEvent,
    CheckpointEvent,
    CompleteEvent,
    ErrorEvent,
    ProgressEvent,
    StartedEvent,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    new_event_id,
)

Build = Callable[[int], BaseEvent]

# Fields every event has; custom event data may not overwrite them.
_RESERVED = frozenset({"id", "type", "run_id", "sequence", "timestamp"})


def redacted(build: Build, scrub: Callable[[Any], Any]) -> Build:
    """`build`, with the value of every field but the common ones passed through `scrub`
    (a server's redaction) when the event is made, before it is logged."""

    def build_redacted(sequence: int) -> BaseEvent:
        event = build(sequence)
        for fields in (event.__dict__, event.__pydantic_extra__ or {}):
            for name, value in list(fields.items()):
                if value is not None and name not in _RESERVED:
                    fields[name] = scrub(value)
        return event

    return build_redacted


def started(
    run_id: str, agent_name: str | None, framework: str | None, attempt: int | None = None
) -> Build:
    if attempt is not None:
        return lambda seq: StartedEvent(
            run_id=run_id,
            sequence=seq,
            agent_name=agent_name,
            framework=framework,
            attempt=attempt,
        )
    return lambda seq: StartedEvent(
        run_id=run_id, sequence=seq, agent_name=agent_name, framework=framework
    )


def progress(run_id: str, step: str, value: float, message: str | None) -> Build:
    return lambda seq: ProgressEvent(
        run_id=run_id, sequence=seq, step=step, progress=value, message=message
    )


def checkpoint(run_id: str, name: str, data: dict[str, Any] | None) -> Build:
    return lambda seq: CheckpointEvent(run_id=run_id, sequence=seq, name=name, data=data or {})


_TOKEN_FIELDS = frozenset(TokenEvent.model_fields)
_new_token = TokenEvent.__new__
_set = object.__setattr__


def _token(fields: dict[str, Any], extra: dict[str, Any]) -> TokenEvent:
    """A `TokenEvent` of its declared fields and `extra`, as `model_construct` makes it."""
    event = _new_token(TokenEvent)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", set(_TOKEN_FIELDS))
    _set(event, "__pydantic_extra__", extra)
    _set(event, "__pydantic_private__", None)
    return event


def token(
    run_id: str, content: str, finish_reason: str | None, node_name: str | None = None
) -> Build:
    if not isinstance(content, str):
        raise TypeError(f"token content must be a string, got {type(content).__name__}")
    # The hottest path of all: what `model_construct` would build, without its loop over
    # the fields (the same object: tests compare the two). The node that produced a token
    # is named only when known (framework adapters).
    return lambda seq: _token(
        {
            "id": new_event_id(),
            "type": "token",
            "run_id": run_id,
            "sequence": seq,
            "timestamp": datetime.now(UTC),
            "content": content,
            "finish_reason": finish_reason,
        },
        {} if node_name is None else {"node_name": node_name},
    )


def tool_call(
    run_id: str, name: str, arguments: Any, call_id: str | None, node_name: str | None
) -> Build:
    return lambda seq: ToolCallEvent(
        run_id=run_id,
        sequence=seq,
        name=name,
        arguments=arguments,
        call_id=call_id,
        node_name=node_name,
    )


def tool_result(
    run_id: str,
    call_id: str | None,
    name: str | None,
    content: Any,
    is_error: bool,
    node_name: str | None,
) -> Build:
    return lambda seq: ToolResultEvent(
        run_id=run_id,
        sequence=seq,
        call_id=call_id,
        name=name,
        content=content,
        is_error=is_error,
        node_name=node_name,
    )


def step(
    run_id: str,
    node_name: str,
    duration_ms: int | None,
    input_keys: list[str] | None,
    output_keys: list[str] | None,
) -> Build:
    return lambda seq: StepEvent(
        run_id=run_id,
        sequence=seq,
        node_name=node_name,
        duration_ms=duration_ms,
        input_keys=input_keys or [],
        output_keys=output_keys or [],
    )


def custom(
    run_id: str, event_type: str, data: dict[str, Any] | None, fields: dict[str, Any]
) -> tuple[str, Build]:
    """The custom event's name (without `custom:`) and its builder."""
    name = custom_event_name(event_type)
    if name in CONFIGURABLE_EVENT_TYPES or name in MANDATORY_EVENT_TYPES:
        raise ValueError(
            f"{event_type!r} is a built-in event type; use its own method "
            f"(emit_{name}, ...) or pick another custom name"
        )
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"custom event data must be a dict, got {type(data).__name__}")
    payload = {**(data or {}), **fields}
    clash = _RESERVED.intersection(payload)
    if clash:
        raise ValueError(
            f"custom event data cannot use the reserved keys {', '.join(sorted(clash))}"
        )
    return name, lambda seq: BaseEvent(
        type=f"custom:{name}", run_id=run_id, sequence=seq, **payload
    )


def complete(
    run_id: str, output: Any, latency_seconds: float | None, metadata: dict[str, Any] | None
) -> Build:
    return lambda seq: CompleteEvent(
        run_id=run_id,
        sequence=seq,
        output=output,
        latency_seconds=latency_seconds,
        metadata=metadata or {},
    )


def error(run_id: str, message: str, code: str, details: dict[str, Any] | None) -> Build:
    return lambda seq: ErrorEvent(
        run_id=run_id, sequence=seq, error=message, code=code, details=details
    )


def cancelled(run_id: str, reason: str | None) -> Build:
    return lambda seq: CancelledEvent(run_id=run_id, sequence=seq, reason=reason)

"""Event models: the common fields of every event and each built-in type's own fields."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic_core import PydanticSerializationError

from .errors import EventEncodingError
from .sse import encode_frame

# Event ids come from a generator seeded from the OS, reseeded in a forked child.
_ids = random.Random()  # noqa: S311 - an identifier, not a secret
_random_bits = _ids.getrandbits
os.register_at_fork(after_in_child=_ids.seed)

# A JSON string as pydantic writes it (non-ASCII kept, the same escapes), in C.
_quote: Any = json.encoder.encode_basestring
_quote_node = '"node_name":'

__all__ = [
    "CONFIGURABLE_EVENT_TYPES",
    "MANDATORY_EVENT_TYPES",
    "TERMINAL_EVENT_TYPES",
    "BaseEvent",
    "CancelledEvent",
    "CheckpointEvent",
    "CompleteEvent",
    "ErrorEvent",
    "HeartbeatEvent",
    "ProgressEvent",
    "StartedEvent",
    "StepEvent",
    "StreamEvent",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "create_event",
    "is_terminal_event",
    "new_event_id",
    "parse_event",
]

TERMINAL_EVENT_TYPES = frozenset({"complete", "error", "cancelled"})
MANDATORY_EVENT_TYPES = frozenset({"started", "complete", "error", "cancelled"})
CONFIGURABLE_EVENT_TYPES = frozenset(
    {"token", "step", "progress", "checkpoint", "heartbeat", "tool_call", "tool_result"}
)


def new_event_id() -> str:
    """`evt-` and 12 random hex digits (an identifier, not a secret: no system call)."""
    return f"evt-{_random_bits(48):012x}"


def _now() -> datetime:
    return datetime.now(UTC)


class BaseEvent(BaseModel):
    """Fields every event carries. Extra keys (custom events) are kept at the top level."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=new_event_id)
    type: str
    run_id: str
    sequence: int = 0
    timestamp: datetime = Field(default_factory=_now)

    @field_serializer("timestamp")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()

    def to_dict(self) -> dict[str, Any]:
        try:
            return self.model_dump(mode="json")
        except PydanticSerializationError as exc:
            raise self._unencodable(exc) from None

    def to_json(self) -> str:
        try:
            return self.model_dump_json()
        except PydanticSerializationError as exc:
            raise self._unencodable(exc) from None

    def _unencodable(self, exc: PydanticSerializationError) -> EventEncodingError:
        """EventEncodingError naming the event type, with its own fields (the common fields
        always encode)."""
        fields = {name: value for name, value in self if name not in BaseEvent.model_fields}
        reason = str(exc).removeprefix("Error serializing to JSON: ").split("\n", 1)[0]
        return EventEncodingError(self.type, fields, reason)

    def to_sse(self) -> str:
        """This event's SSE frame, as text (`encode_frame`)."""
        return encode_frame(self.type, self.to_json(), self.sequence).decode()


class StartedEvent(BaseEvent):
    type: Literal["started"] = "started"
    agent_name: str | None = None
    framework: str | None = None


class ProgressEvent(BaseEvent):
    type: Literal["progress"] = "progress"
    step: str
    progress: float = 0.0
    message: str | None = None

    @field_validator("progress")
    @classmethod
    def _clamp(cls, value: float) -> float:
        return min(1.0, max(0.0, value))


class CheckpointEvent(BaseEvent):
    type: Literal["checkpoint"] = "checkpoint"
    name: str
    data: dict[str, Any] = Field(default_factory=dict)


class TokenEvent(BaseEvent):
    type: Literal["token"] = "token"
    content: str
    finish_reason: str | None = None

    def to_json(self) -> str:
        """`model_dump_json`'s text, written directly for the usual token (the hottest
        serialization of all: pydantic would call `_iso` back in Python for each); any
        other shape goes the general way."""
        fields = self.__dict__
        extra = self.__pydantic_extra__
        node = extra.get("node_name") if extra else None
        finish = fields.get("finish_reason")
        stamp = fields.get("timestamp")
        if (
            type(fields.get("content")) is not str
            or type(fields.get("sequence")) is not int
            or type(stamp) is not datetime
            or not (finish is None or type(finish) is str)
            or (extra and (len(extra) != 1 or type(node) is not str))
            or len(fields) != 7
        ):
            return super().to_json()
        text = (
            f'{{"id":{_quote(fields["id"])},"type":{_quote(fields["type"])},'
            f'"run_id":{_quote(fields["run_id"])},"sequence":{fields["sequence"]},'
            f'"timestamp":"{stamp.isoformat()}","content":{_quote(fields["content"])},'
            f'"finish_reason":{"null" if finish is None else _quote(finish)}'
            f"{'' if node is None else f',{_quote_node}{_quote(node)}'}}}"
        )
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:  # a lone surrogate: pydantic's error, with its reason
                return super().to_json()
        return text


class StepEvent(BaseEvent):
    type: Literal["step"] = "step"
    node_name: str
    duration_ms: int | None = None
    input_keys: list[str] = Field(default_factory=list)
    output_keys: list[str] = Field(default_factory=list)


class ToolCallEvent(BaseEvent):
    """The model asked for a tool: its name, arguments and the call's id."""

    type: Literal["tool_call"] = "tool_call"
    name: str
    arguments: Any = Field(default_factory=dict)
    call_id: str | None = None
    node_name: str | None = None


class ToolResultEvent(BaseEvent):
    """A tool answered the call `call_id`."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str | None = None
    name: str | None = None
    content: Any = None
    is_error: bool = False
    node_name: str | None = None


class HeartbeatEvent(BaseEvent):
    type: Literal["heartbeat"] = "heartbeat"


class CompleteEvent(BaseEvent):
    type: Literal["complete"] = "complete"
    output: Any = Field(default_factory=dict)
    latency_seconds: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ErrorEvent(BaseEvent):
    type: Literal["error"] = "error"
    error: str
    code: str = "INTERNAL_ERROR"
    details: dict[str, Any] | None = None


class CancelledEvent(BaseEvent):
    type: Literal["cancelled"] = "cancelled"
    reason: str | None = None


StreamEvent = (
    StartedEvent
    | ProgressEvent
    | CheckpointEvent
    | TokenEvent
    | StepEvent
    | ToolCallEvent
    | ToolResultEvent
    | HeartbeatEvent
    | CompleteEvent
    | ErrorEvent
    | CancelledEvent
    | BaseEvent
)

EVENT_CLASSES: dict[str, type[BaseEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        StartedEvent,
        ProgressEvent,
        CheckpointEvent,
        TokenEvent,
        StepEvent,
        ToolCallEvent,
        ToolResultEvent,
        HeartbeatEvent,
        CompleteEvent,
        ErrorEvent,
        CancelledEvent,
    )
}


def is_terminal_event(event: BaseEvent | dict[str, Any] | str) -> bool:
    """True for `complete`, `error` and `cancelled` (an event, its dict or its type)."""
    kind = (
        event
        if isinstance(event, str)
        else (event.get("type") if isinstance(event, dict) else event.type)
    )
    return kind in TERMINAL_EVENT_TYPES


def create_event(event_type: str, run_id: str, sequence: int = 0, **fields: Any) -> BaseEvent:
    cls = EVENT_CLASSES.get(event_type, BaseEvent)
    return cls(type=event_type, run_id=run_id, sequence=sequence, **fields)


def parse_event(data: dict[str, Any]) -> BaseEvent:
    """The right event class for `data["type"]`; unknown types keep their fields as extras."""
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("event has no 'type'")
    return EVENT_CLASSES.get(kind, BaseEvent).model_validate(data)

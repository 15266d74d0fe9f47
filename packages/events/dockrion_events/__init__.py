"""dockrion-events: what agent code imports to stream events from a run.

>>> from dockrion_events import get_current_context
>>> def handle(payload, context):             # a handler the runtime serves
...     context.sync_emit_token("Hello")       # from a worker thread: batched, in order
...     context.sync_emit_progress("search", 0.5)
...     return {"answer": "Hello"}

The names here are the public API: what agent code emits with, the typed event models a
client reads (`TokenEvent`, `CompleteEvent`, ..., `parse_event` to turn a decoded event
into one), and what a server needs to keep run logs and stream them. The rest (sinks,
run-id helpers) is in the submodules. Importing this package never imports Starlette,
uvicorn or redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .auth_context import AuthContext
from .backends.base import EventBackend
from .backends.memory import InMemoryBackend
from .bus import EventBus
from .context import StreamContext
from .current_context import context_scope, get_current_context
from .errors import (
    BackendConnectionError,
    BackendError,
    EventEncodingError,
    EventsError,
    EventsExpiredError,
    EventsLostError,
    InvalidRunIdError,
    RunCancelledError,
    RunExistsError,
    RunFinishedError,
    RunNotFoundError,
    StreamClosedError,
    SyncEmitRequiredError,
    TerminalEventError,
)
from .filter import EventsFilter, Redaction
from .models import (
    BaseEvent,
    CancelledEvent,
    CheckpointEvent,
    CompleteEvent,
    ErrorEvent,
    HeartbeatEvent,
    ProgressEvent,
    StartedEvent,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    is_terminal_event,
    parse_event,
)
from .private_log import PrivateRunLog
from .record import EventRecord
from .run_manager import RunManager
from .runs import Run, RunStatus, validate_run_id
from .sse import SseMessage, SseParser, encode_comment, encode_frame, parse_sse

if TYPE_CHECKING:
    from .backends.redis import RedisBackend as RedisBackend

__all__ = [
    "AuthContext",
    "BackendConnectionError",
    "BackendError",
    "BaseEvent",
    "CancelledEvent",
    "CheckpointEvent",
    "CompleteEvent",
    "ErrorEvent",
    "EventBackend",
    "EventBus",
    "EventEncodingError",
    "EventRecord",
    "EventsError",
    "EventsExpiredError",
    "EventsFilter",
    "EventsLostError",
    "HeartbeatEvent",
    "InMemoryBackend",
    "InvalidRunIdError",
    "PrivateRunLog",
    "ProgressEvent",
    "Redaction",
    "Run",
    "RunCancelledError",
    "RunExistsError",
    "RunFinishedError",
    "RunManager",
    "RunNotFoundError",
    "RunStatus",
    "SseMessage",
    "SseParser",
    "StartedEvent",
    "StepEvent",
    "StreamClosedError",
    "StreamContext",
    "SyncEmitRequiredError",
    "TerminalEventError",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "__version__",
    "context_scope",
    "encode_comment",
    "encode_frame",
    "get_current_context",
    "is_terminal_event",
    "parse_event",
    "parse_sse",
    "validate_run_id",
]


def __getattr__(name: str) -> object:
    # RedisBackend needs the `redis` extra: it is imported only when asked for, so agent code
    # importing this package never loads redis (and it is left out of `__all__`, so a star
    # import does not load it either).
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module 'dockrion_events' has no attribute {name!r}")

"""dockrion-events: what agent code imports to stream events from a run.

>>> from dockrion_events import get_current_context
>>> def handle(payload, context):             # a handler the runtime serves
...     context.sync_emit_token("Hello")       # from a worker thread: batched, in order
...     context.sync_emit_progress("search", 0.5)
...     return {"answer": "Hello"}

Importing this package never imports Starlette, uvicorn or redis.
"""

from __future__ import annotations

from ._version import __version__
from .backends.base import EventBackend
from .backends.memory import InMemoryBackend
from .bus import EventBus, create_event_bus
from .context import (
    EventSink,
    StreamContext,
    context_scope,
    get_current_context,
    set_current_context,
)
from .errors import (
    BackendConnectionError,
    BackendError,
    EventsError,
    EventsExpiredError,
    InvalidRunIdError,
    RunCancelledError,
    RunExistsError,
    RunFinishedError,
    RunNotFoundError,
    StreamClosedError,
)
from .filter import PRESETS, EventsFilter
from .models import (
    TERMINAL_EVENT_TYPES,
    BaseEvent,
    CancelledEvent,
    CheckpointEvent,
    CompleteEvent,
    ErrorEvent,
    HeartbeatEvent,
    ProgressEvent,
    StartedEvent,
    StepEvent,
    StreamEvent,
    TokenEvent,
    create_event,
    is_terminal_event,
    parse_event,
)
from .record import EventRecord
from .run_manager import RunManager
from .runs import (
    RUN_ID_PATTERN,
    Run,
    RunCreateResponse,
    RunStatus,
    generate_run_id,
    validate_run_id,
)
from .sse import SseMessage, SseParser, encode_comment, encode_frame, parse_sse
from .streaming_backends import LangGraphBackend, QueueBackend, StreamingBackend

__all__ = [
    "PRESETS",
    "RUN_ID_PATTERN",
    "TERMINAL_EVENT_TYPES",
    "BackendConnectionError",
    "BackendError",
    "BaseEvent",
    "CancelledEvent",
    "CheckpointEvent",
    "CompleteEvent",
    "ErrorEvent",
    "EventBackend",
    "EventBus",
    "EventRecord",
    "EventSink",
    "EventsError",
    "EventsExpiredError",
    "EventsFilter",
    "HeartbeatEvent",
    "InMemoryBackend",
    "InvalidRunIdError",
    "LangGraphBackend",
    "ProgressEvent",
    "QueueBackend",
    "Run",
    "RunCancelledError",
    "RunCreateResponse",
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
    "StreamEvent",
    "StreamingBackend",
    "TokenEvent",
    "__version__",
    "context_scope",
    "create_event",
    "create_event_bus",
    "encode_comment",
    "encode_frame",
    "generate_run_id",
    "get_current_context",
    "is_terminal_event",
    "parse_event",
    "parse_sse",
    "set_current_context",
    "validate_run_id",
]


def __getattr__(name: str) -> object:
    # RedisBackend needs the `redis` extra: it is imported only when asked for, so agent code
    # importing this package never loads redis.
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module 'dockrion_events' has no attribute {name!r}")

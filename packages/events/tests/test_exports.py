"""The public surface of `dockrion_events`: exactly the names below, each importable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dockrion_events

EXPECTED = {
    # agent code
    "StreamContext",
    "AuthContext",
    "get_current_context",
    "context_scope",
    "EventsFilter",
    "BaseEvent",
    "RunCancelledError",
    "StreamClosedError",
    "EventEncodingError",
    "TerminalEventError",
    "SyncEmitRequiredError",
    # a server keeping run logs and streaming them
    "EventBackend",
    "InMemoryBackend",
    "EventBus",
    "EventRecord",
    "Redaction",
    "RunManager",
    "Run",
    "RunStatus",
    "validate_run_id",
    "HeartbeatEvent",
    "encode_frame",
    "encode_comment",
    # clients reading a stream: the typed event models
    "StartedEvent",
    "TokenEvent",
    "ProgressEvent",
    "StepEvent",
    "CheckpointEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "CompleteEvent",
    "ErrorEvent",
    "CancelledEvent",
    "is_terminal_event",
    "parse_event",
    "SseMessage",
    "SseParser",
    "parse_sse",
    # errors the above raise
    "EventsError",
    "BackendError",
    "BackendConnectionError",
    "EventsExpiredError",
    "EventsLostError",
    "InvalidRunIdError",
    "PrivateRunLog",
    "RunExistsError",
    "RunFinishedError",
    "RunNotFoundError",
    "__version__",
}


def test_exported_members() -> None:
    assert set(dockrion_events.__all__) == EXPECTED
    assert len(dockrion_events.__all__) == len(EXPECTED), "a name is listed twice"
    for name in dockrion_events.__all__:
        assert getattr(dockrion_events, name) is not None, name
        if name != "__version__":
            member = getattr(dockrion_events, name)
            assert member.__module__.startswith("dockrion_events."), name


def test_redis_backend_is_importable_lazily_and_left_out_of_star_imports() -> None:
    code = (
        "import sys\n"
        "from dockrion_events import *\n"
        "assert 'redis' not in sys.modules\n"
        "import dockrion_events\n"
        "from dockrion_events.backends.redis import RedisBackend\n"
        "assert dockrion_events.RedisBackend is RedisBackend\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_agent_code_does_not_load_the_client_or_the_server() -> None:
    # The client (`dockrion-events[client]`, httpx) and the server's dependencies load
    # only when asked for.
    code = (
        "import sys\n"
        "import dockrion_events\n"
        "from dockrion_events import *\n"
        "loaded = {'httpx', 'starlette', 'uvicorn', 'redis'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "from dockrion_events.client import AsyncClient, Client\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'create_event_bus'"):
        getattr(dockrion_events, "create_event_bus")  # noqa: B009

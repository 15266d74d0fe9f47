"""Errors of the event layer; each has a stable `code` the HTTP layer can return."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendConnectionError",
    "BackendError",
    "BackendPublishError",
    "BackendSubscribeError",
    "EventEncodingError",
    "EventsError",
    "EventsExpiredError",
    "InvalidRunIdError",
    "RunCancelledError",
    "RunExistsError",
    "RunFinishedError",
    "RunNotFoundError",
    "StreamClosedError",
    "SyncEmitRequiredError",
    "TerminalEventError",
]


class EventsError(Exception):
    """Base of the errors of `dockrion_events`."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EventEncodingError(EventsError, TypeError):
    """An event whose data has no JSON form (an object JSON has no type for); it was not
    appended. `fields` holds the event's own fields, so a caller can say which one."""

    code = "INVALID_OUTPUT"

    def __init__(self, event_type: str, fields: dict[str, Any], reason: str) -> None:
        super().__init__(f"The data of a {event_type} event cannot be encoded as JSON: {reason}")
        self.event_type = event_type
        self.fields = fields


class InvalidRunIdError(EventsError, ValueError):
    code = "VALIDATION_ERROR"


class RunNotFoundError(EventsError, LookupError):
    code = "NOT_FOUND"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run '{run_id}' not found")
        self.run_id = run_id


class RunExistsError(EventsError):
    code = "CONFLICT"

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"Run id '{run_id}' is already in use; choose another (a UUID, for example)"
        )
        self.run_id = run_id


class RunFinishedError(EventsError):
    """The run already reached a terminal status; nothing more can be appended."""

    code = "RUN_FINISHED"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"Run '{run_id}' already finished with status {status}")
        self.run_id = run_id
        self.status = status


class EventsExpiredError(EventsError):
    """The cursor points before the oldest event still kept (`max_events_per_run`)."""

    code = "EVENTS_EXPIRED"

    def __init__(self, run_id: str, requested: int, first_available: int) -> None:
        super().__init__(
            f"Events of run '{run_id}' before sequence {first_available} are no longer kept "
            f"(asked from {requested}); resume from {first_available} or later"
        )
        self.run_id = run_id
        self.requested = requested
        self.first_available = first_available


class StreamClosedError(EventsError, RuntimeError):
    """An emit after the run's terminal event."""

    code = "STREAM_CLOSED"


class TerminalEventError(EventsError, RuntimeError):
    """Agent code emitted `complete`, `error` or `cancelled` on a context whose run a server
    ends: the server emits them, after its policies, from what the agent returns or
    raises."""

    code = "TERMINAL_EVENT_RESERVED"


class RunCancelledError(StreamClosedError):
    """Raised by the next emit of an agent whose run was cancelled, so the agent stops."""

    code = "CANCELLED"


class SyncEmitRequiredError(EventsError, TypeError):
    """An async `emit_*` called where nothing can await it (a plain `def` handler, in a
    worker thread): raised at the call, since the event would otherwise never be sent."""

    code = "AGENT_EXECUTION_ERROR"


class BackendError(EventsError):
    code = "BACKEND_ERROR"

    def __init__(self, message: str, backend: str = "unknown") -> None:
        super().__init__(message)
        self.backend = backend

    def __str__(self) -> str:
        return f"[{self.backend}] {self.message}"


class BackendConnectionError(BackendError):
    code = "BACKEND_UNAVAILABLE"


class BackendPublishError(BackendError):
    pass


class EventsLostError(BackendPublishError):
    """Events the backend had acknowledged are gone from the run's log: a Redis primary
    failed before its replica received them, and the replica took over. The producer's
    later events are stored after the lost ones (the log has a hole there)."""

    code = "EVENTS_LOST"

    def __init__(self, run_id: str, first: int, last: int, backend: str = "redis") -> None:
        super().__init__(
            f"run '{run_id}': events {first} to {last} were acknowledged by a Redis primary "
            "that failed before its replica had them, and are lost (a failover)",
            backend,
        )
        self.run_id = run_id
        self.first = first
        self.last = last


class BackendSubscribeError(BackendError):
    pass

"""What the LangGraph Server API's endpoints share: the one assistant (the agent), the body
of a request, run statuses and run records as the LangGraph clients read them, and the
threads of a caller (ownership from the thread registry, shared by every instance; the
metadata a client gave a thread when it created it, kept by this process)."""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from dockrion_events import Run, RunStatus

from ..auth import principal_of
from ..engine.conversations import THREAD_ID_PATTERN
from ..errors import RuntimeHTTPError
from ..runtime import Runtime, runtime_of

__all__ = [
    "LG_METADATA",
    "MAX_LISTED",
    "ThreadRecord",
    "assistant",
    "assistant_uuid",
    "caller_runs",
    "check_assistant",
    "check_thread_id",
    "interrupted",
    "json_object",
    "lg_status",
    "owned_thread",
    "run_record",
    "thread_owner",
    "thread_records",
]

# The key of a run's metadata that holds what the LangGraph API recorded of it.
LG_METADATA = "langgraph"
# The most recent runs of a caller a listing looks through.
MAX_LISTED = 1000
# LangGraph Server's assistant ids: a UUID derived from the graph id (this namespace).
_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
_STARTED = datetime.now(UTC)


def assistant_uuid(name: str) -> str:
    """The assistant id of the agent named `name`, as LangGraph Server derives it."""
    return str(uuid.uuid5(_NAMESPACE, name))


def assistant(runtime: Runtime) -> dict[str, Any]:
    """The one assistant: the agent, its graph id its name."""
    name = runtime.settings.spec.agent.name
    return {
        "assistant_id": assistant_uuid(name),
        "graph_id": name,
        "name": name,
        "description": runtime.settings.spec.agent.description,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": _STARTED.isoformat(),
        "updated_at": _STARTED.isoformat(),
    }


def check_assistant(runtime: Runtime, value: Any) -> str:
    """The assistant id for `value` (the agent's name or its UUID); 404 for any other."""
    name = runtime.settings.spec.agent.name
    if value not in (name, assistant_uuid(name)):
        shown = str(value)[:80]
        raise RuntimeHTTPError(
            f"Assistant {shown!r} not found: this server has one, {name!r} "
            f"({assistant_uuid(name)})",
            "NOT_FOUND",
        )
    return assistant_uuid(name)


async def json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body, a JSON object (within the body's size and time limits, checked by
    the input policy)."""
    if empty_ok and request.headers.get("content-length") in (None, "0"):
        return {}
    body = await runtime_of(request).body.read(request, check=False)
    if not isinstance(body, dict):
        raise RuntimeHTTPError(
            "Request body must be a JSON object",
            "VALIDATION_ERROR",
            [{"loc": ["body"], "msg": "must be a JSON object"}],
        )
    return body


def interrupted(run: Run) -> bool:
    """Whether the run completed by stopping at an interrupt (its output says so)."""
    output = run.output
    return (
        run.status == RunStatus.COMPLETED
        and isinstance(output, dict)
        and bool(output.get("__interrupt__"))
    )


def lg_status(run: Run) -> str:
    """A run's status as LangGraph's clients know it."""
    status = run.status
    if status == RunStatus.ACCEPTED:
        return "pending"
    if status == RunStatus.RUNNING:
        return "running"
    if status == RunStatus.COMPLETED:
        return "interrupted" if interrupted(run) else "success"
    if status == RunStatus.FAILED:
        code = (run.error or {}).get("code")
        return "timeout" if code == "RUN_TIMEOUT" else "error"
    return "interrupted"  # cancelled


def run_record(run: Run) -> dict[str, Any]:
    """A run as LangGraph's clients read it (`Run`)."""
    recorded = run.metadata.get(LG_METADATA)
    lg = recorded if isinstance(recorded, dict) else {}
    updated = run.completed_at or run.started_at or run.created_at
    return {
        "run_id": run.run_id,
        "thread_id": run.metadata.get("thread_id"),
        "assistant_id": lg.get("assistant_id"),
        "created_at": run.created_at.isoformat(),
        "updated_at": updated.isoformat(),
        "status": lg_status(run),
        "metadata": lg.get("metadata") or {},
        "multitask_strategy": lg.get("multitask_strategy") or "enqueue",
        "kwargs": {"stream_mode": lg.get("stream_mode") or ["values"]},
    }


@dataclass
class ThreadRecord:
    """What a client gave a thread when it created it."""

    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


# One table per runtime (an app), gone with it.
_RECORDS: weakref.WeakKeyDictionary[Runtime, dict[str, ThreadRecord]] = weakref.WeakKeyDictionary()


def thread_records(runtime: Runtime) -> dict[str, ThreadRecord]:
    """The threads created through the API in this process, by id."""
    records = _RECORDS.get(runtime)
    if records is None:
        records = _RECORDS[runtime] = {}
    return records


def check_thread_id(thread_id: str) -> str:
    if not THREAD_ID_PATTERN.fullmatch(thread_id):
        raise RuntimeHTTPError(
            f"Invalid thread id {thread_id[:40]!r}: use 1 to 128 letters, digits, '_', "
            "'.', ':' or '-', starting with a letter or digit",
            "VALIDATION_ERROR",
        )
    return thread_id


async def thread_owner(request: Request, thread_id: str) -> str | None:
    """Who owns the thread (None: nobody yet)."""
    return await runtime_of(request).threads.backend.thread_owner(check_thread_id(thread_id))


async def owned_thread(request: Request) -> str:
    """The thread named in the path, if the caller owns it (else 404)."""
    thread_id: str = request.path_params["thread_id"]
    if await thread_owner(request, thread_id) != (principal_of(request).id or ""):
        raise RuntimeHTTPError(f"Thread '{thread_id[:128]}' not found", "NOT_FOUND")
    return thread_id


async def caller_runs(request: Request, thread_id: str | None = None) -> list[Run]:
    """The caller's runs (on `thread_id` when given), newest first."""
    runs = runtime_of(request).require_runs()
    owner = principal_of(request).id
    found = await runs.list_runs(None, MAX_LISTED, owner=owner)
    return [
        run
        for run in found
        if run.owner == owner and (thread_id is None or run.metadata.get("thread_id") == thread_id)
    ]

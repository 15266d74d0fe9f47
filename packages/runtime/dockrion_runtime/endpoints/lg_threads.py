"""The LangGraph Server API's threads: `POST /threads` (with `thread_id`, `metadata`,
`if_exists`), `GET /threads/{thread_id}`, `POST /threads/search` (the caller's threads,
filtered by metadata and status, with their values), `DELETE /threads/{thread_id}`,
`GET /threads/{thread_id}/state` and `POST /threads/{thread_id}/history` (newest first).
A thread belongs to the caller that created it or first ran on it; to anyone else it does
not exist (404)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import Run, RunNotFoundError, RunStatus

from ..auth import principal_of
from ..engine.encoding import to_jsonable
from ..errors import RuntimeHTTPError
from ..runtime import Runtime, runtime_of
from .lg_access import (
    ThreadRecord,
    caller_runs,
    check_thread_id,
    interrupted,
    json_object,
    owned_thread,
    thread_records,
)

__all__ = [
    "create_thread",
    "delete_thread",
    "get_thread",
    "search_threads",
    "thread_history",
    "thread_state",
]

_MAX_PAGE = 1000


def _int_field(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuntimeHTTPError(
            f"'{name}' must be an integer between {low} and {high}",
            "VALIDATION_ERROR",
            [{"loc": ["body", name], "msg": f"an integer between {low} and {high}"}],
        )
    return value


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RuntimeHTTPError(
            "'metadata' must be a JSON object",
            "VALIDATION_ERROR",
            [{"loc": ["body", "metadata"], "msg": "must be an object"}],
        )
    return metadata


async def create_thread(request: Request) -> Response:
    """`POST /threads`: a new thread of the caller's (`if_exists: do_nothing` returns the
    caller's existing one; otherwise an id in use is 409)."""
    body = await json_object(request, empty_ok=True)
    runtime = runtime_of(request)
    thread_id = check_thread_id(str(body.get("thread_id") or uuid.uuid4()))
    metadata = _metadata(body)
    if_exists = body.get("if_exists") or "raise"
    if if_exists not in ("raise", "do_nothing"):
        raise RuntimeHTTPError(
            "'if_exists' must be raise or do_nothing", "VALIDATION_ERROR", [{"loc": ["body"]}]
        )
    owner = principal_of(request).id or ""
    backend = runtime.threads.backend
    existing = await backend.thread_owner(thread_id)
    if existing is None:
        existing = await backend.claim_thread(thread_id, owner, runtime.threads.ownership_seconds)
        if existing == owner:
            thread_records(runtime)[thread_id] = ThreadRecord(datetime.now(UTC), metadata)
            return JSONResponse(await _thread(request, thread_id))
    if existing == owner and if_exists == "do_nothing":
        return JSONResponse(await _thread(request, thread_id))
    raise RuntimeHTTPError(f"Thread '{thread_id}' already exists", "CONFLICT")


async def get_thread(request: Request) -> Response:
    return JSONResponse(await _thread(request, await owned_thread(request)))


async def search_threads(request: Request) -> Response:
    """`POST /threads/search`: the caller's threads, most recently updated first."""
    body = await json_object(request, empty_ok=True)
    wanted = _metadata(body)
    status = body.get("status")
    ids = body.get("ids")
    limit = _int_field(body, "limit", 10, 1, _MAX_PAGE)
    offset = _int_field(body, "offset", 0, 0, _MAX_PAGE)
    runtime = runtime_of(request)
    owner = principal_of(request).id or ""
    runs = await caller_runs(request)
    candidates = list(thread_records(runtime))
    candidates += [str(run.metadata["thread_id"]) for run in runs if run.metadata.get("thread_id")]
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for thread_id in candidates:
        if thread_id in seen or (isinstance(ids, list) and thread_id not in ids):
            continue
        seen.add(thread_id)
        if await runtime.threads.backend.thread_owner(thread_id) != owner:
            continue
        thread = await _thread(request, thread_id, runs)
        metadata = thread["metadata"]
        if any(metadata.get(key) != value for key, value in wanted.items()):
            continue
        if status is not None and thread["status"] != status:
            continue
        found.append(thread)
    found.sort(key=lambda thread: str(thread["updated_at"]), reverse=True)
    return JSONResponse(found[offset : offset + limit])


async def delete_thread(request: Request) -> Response:
    """`DELETE /threads/{thread_id}`: its checkpoints, its runs and its ownership gone; 409
    THREAD_BUSY while a run holds it."""
    thread_id = await owned_thread(request)
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    backend = runtime.threads.backend
    if await backend.thread_turn_holder(thread_id) is not None:
        raise RuntimeHTTPError(
            f"Thread '{thread_id}' is running a run: cancel it or wait until it ends",
            "THREAD_BUSY",
        )
    manager = runtime.require_runs()
    for run in await caller_runs(request, thread_id):
        with contextlib.suppress(RunNotFoundError):
            await manager.bus.backend.delete_run(run.run_id)
    await agent.forget_thread(thread_id)
    await backend.release_thread(thread_id, principal_of(request).id or "")
    thread_records(runtime).pop(thread_id, None)
    return Response(status_code=204)


async def thread_state(request: Request) -> Response:
    """`GET /threads/{thread_id}/state`: values, next, tasks with their interrupts,
    checkpoint and interrupts."""
    thread_id = await owned_thread(request)
    states = await _states(request, thread_id, 1)
    if states:
        return JSONResponse(states[0])
    return JSONResponse(_empty_state(thread_id))


async def thread_history(request: Request) -> Response:
    """`POST /threads/{thread_id}/history`: the thread's states, newest first."""
    thread_id = await owned_thread(request)
    body = await json_object(request, empty_ok=True)
    limit = _int_field(body, "limit", 10, 1, _MAX_PAGE)
    return JSONResponse(await _states(request, thread_id, limit))


def _scrubbed(runtime: Runtime, value: Any) -> Any:
    """A value about to be sent, redacted like every output."""
    return runtime.supervisor.check_output(to_jsonable(value))[0]


def _checkpoint(thread_id: str, config: Any) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") if isinstance(config, dict) else None
    if not configurable:
        return None
    return {
        "thread_id": thread_id,
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def _interrupts(items: Any) -> list[dict[str, Any]]:
    return [
        {"value": getattr(item, "value", None), "id": str(getattr(item, "id", ""))}
        for item in items or ()
    ]


async def _states(request: Request, thread_id: str, limit: int) -> list[dict[str, Any]]:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    snapshots = await agent.thread_snapshots(thread_id, limit)
    if not snapshots:
        runs = [run for run in await caller_runs(request, thread_id) if run.terminal]
        return [_run_state(runtime, thread_id, run) for run in runs[:limit]]
    states = []
    for snapshot in snapshots:
        tasks = [
            {
                "id": task.id,
                "name": task.name,
                "path": list(getattr(task, "path", ()) or ()),
                "error": None if task.error is None else repr(task.error),
                "interrupts": _interrupts(task.interrupts),
                "checkpoint": None,
                "state": None,
                "result": getattr(task, "result", None),
            }
            for task in snapshot.tasks
        ]
        checkpoint = _checkpoint(thread_id, snapshot.config)
        parent = _checkpoint(thread_id, snapshot.parent_config)
        state = {
            "values": snapshot.values,
            "next": list(snapshot.next),
            "tasks": tasks,
            "metadata": snapshot.metadata,
            "created_at": snapshot.created_at,
            "checkpoint": checkpoint,
            "parent_checkpoint": parent,
            "interrupts": _interrupts(getattr(snapshot, "interrupts", ())),
            # the older names LangGraph Server still sends
            "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
            "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
        }
        states.append(_scrubbed(runtime, state))
    return states


def _run_state(runtime: Runtime, thread_id: str, run: Run) -> dict[str, Any]:
    """The state after a run of an agent that keeps no checkpoints: its output."""
    output = run.output if run.status == RunStatus.COMPLETED else None
    values = output if isinstance(output, dict) else {"output": output}
    state = _empty_state(thread_id)
    state.update(
        values=values,
        created_at=(run.completed_at or run.created_at).isoformat(),
        checkpoint={"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": run.run_id},
        checkpoint_id=run.run_id,
        metadata={"run_id": run.run_id},
    )
    return dict(_scrubbed(runtime, state))


def _empty_state(thread_id: str) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": {},
        "created_at": None,
        "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None},
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


async def _thread(
    request: Request, thread_id: str, runs: list[Run] | None = None
) -> dict[str, Any]:
    """A thread as LangGraph's clients read it (`Thread`)."""
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    if runs is None:
        runs = await caller_runs(request, thread_id)
    else:
        runs = [run for run in runs if run.metadata.get("thread_id") == thread_id]
    record = thread_records(runtime).get(thread_id)
    snapshots = await agent.thread_snapshots(thread_id, 1)
    snapshot = snapshots[0] if snapshots else None
    latest = runs[0] if runs else None
    busy = await runtime.threads.backend.thread_turn_holder(thread_id) is not None
    interrupts: dict[str, list[dict[str, Any]]] = {}
    if snapshot is not None:
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = _interrupts(task.interrupts)
        values: Any = snapshot.values
    elif latest is not None and latest.status == RunStatus.COMPLETED:
        values = latest.output if isinstance(latest.output, dict) else {"output": latest.output}
    else:
        values = {}
    if busy or (latest is not None and not latest.terminal):
        status = "busy"
    elif interrupts or (latest is not None and interrupted(latest)):
        status = "interrupted"
    elif latest is not None and latest.status == RunStatus.FAILED:
        status = "error"
    else:
        status = "idle"
    times = [run.created_at for run in runs]
    created = record.created_at if record is not None else min(times, default=None)
    updated = [t for run in runs for t in (run.completed_at, run.started_at) if t is not None]
    updated_at = max([*updated, *times], default=created)
    return dict(
        _scrubbed(
            runtime,
            {
                "thread_id": thread_id,
                "created_at": created.isoformat() if created else None,
                "updated_at": updated_at.isoformat() if updated_at else None,
                "state_updated_at": updated_at.isoformat() if updated_at else None,
                "metadata": dict(record.metadata) if record is not None else {},
                "config": {},
                "status": status,
                "values": values,
                "interrupts": interrupts,
            },
        )
    )

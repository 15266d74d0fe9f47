"""The caller's runs and threads: `GET /runs` (filtered by status and thread, newest first,
a page at a time), `GET /threads/{thread_id}` (its status and latest values),
`GET /threads/{thread_id}/runs` and `DELETE /threads/{thread_id}` (its runs, its
checkpoints and its ownership gone). Only the caller's own runs and threads are seen; a
thread of another caller does not exist (404)."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import Run, RunNotFoundError, RunStatus

from ..auth import principal_of
from ..engine.conversations import THREAD_ID_PATTERN
from ..engine.thread_records import THREAD_RECORD_RUNS
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from .run_access import int_query

__all__ = ["MAX_LISTED", "delete_thread", "get_thread", "list_runs", "thread_runs"]

_BACKGROUND = ("background", "ag-ui")  # runs with a state of their own (`GET /runs/{id}`)
_GOING = (RunStatus.ACCEPTED.value, RunStatus.RUNNING.value)

# The most recent runs of a caller a listing looks through (runs expire with the events
# backend's retention; a page is at most 100 of them).
MAX_LISTED = 1000


async def list_runs(request: Request) -> Response:
    """`GET /runs?status=&thread_id=&limit=&offset=`: the caller's runs, newest first."""
    raw = request.query_params.get("status")
    status = None
    if raw is not None:
        try:
            status = RunStatus(raw.upper())
        except ValueError:
            names = ", ".join(s.value for s in RunStatus)
            raise RuntimeHTTPError(
                f"status must be one of {names}, got {raw[:40]!r}", "VALIDATION_ERROR"
            ) from None
    thread_id = request.query_params.get("thread_id")
    if thread_id is not None:
        _check_thread_id(thread_id)
    return JSONResponse(_page(request, await _caller_runs(request, status, thread_id)))


async def thread_runs(request: Request) -> Response:
    """`GET /threads/{thread_id}/runs?limit=&offset=&cursor=`: the thread's runs, every way
    they came in (`via`), newest first, with their input and output."""
    thread_id = await _owned_thread(request)
    entries = await _entries(request, thread_id)
    return JSONResponse(_entry_page(request, [_entry_view(e) for e in entries]))


async def get_thread(request: Request) -> Response:
    """`GET /threads/{thread_id}`: its status (idle, busy, interrupted or error), its latest
    values (the agent's checkpoints, else its latest completed run's output), created and
    updated times and metadata."""
    thread_id = await _owned_thread(request)
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    entries = await _entries(request, thread_id)
    state = await agent.thread_state(thread_id)
    if state is None and not entries:
        raise RuntimeHTTPError(f"Thread '{thread_id}' not found", "NOT_FOUND")
    latest = entries[0] if entries else None
    busy = await runtime.threads.backend.thread_turn_holder(thread_id) is not None
    going = any(
        e["status"] in _GOING and e.get("via") in _BACKGROUND for e in entries
    )  # waiting in line, or running on an instance
    output = latest.get("output") if latest is not None else None
    if busy or going:
        status = "busy"
    elif (state is not None and state.interrupted) or (
        isinstance(output, dict) and output.get("__interrupt__")
    ):
        status = "interrupted"
    elif latest is not None and latest["status"] == RunStatus.FAILED.value:
        status = "error"
    else:
        status = "idle"
    completed = [e for e in entries if e["status"] == RunStatus.COMPLETED.value]
    values: Any = state.values if state is not None else None
    if state is None and completed:
        values = completed[0].get("output")
    values = runtime.supervisor.check_output(values)[0]  # redacted like every output
    times = [e["created_at"] for e in entries]
    updated = [t for e in entries for t in (e.get("completed_at"), e.get("started_at")) if t]
    if state is not None and state.updated_at is not None:
        updated.append(state.updated_at.isoformat())
        times.append(state.updated_at.isoformat())
    return JSONResponse(
        {
            "thread_id": thread_id,
            "status": status,
            "values": values,
            "created_at": min(times) if times else None,
            "updated_at": max([*updated, *times]) if updated or times else None,
            "metadata": {"runs": len(entries), "latest_run_id": latest and latest["run_id"]},
        }
    )


async def delete_thread(request: Request) -> Response:
    """`DELETE /threads/{thread_id}`: its checkpoints, its runs and its ownership gone; 409
    THREAD_BUSY while a run holds it."""
    thread_id = await _owned_thread(request)
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    backend = runtime.threads.backend
    if await backend.thread_turn_holder(thread_id) is not None:
        raise RuntimeHTTPError(
            f"Thread '{thread_id}' is running a run: cancel it (DELETE /runs/{{run_id}}) or "
            "wait until it ends, then delete the thread",
            "THREAD_BUSY",
        )
    entries = await _entries(request, thread_id)
    await agent.forget_thread(thread_id)
    manager = runtime.require_runs()
    for entry in entries:
        if entry.get("via") in _BACKGROUND:
            with contextlib.suppress(RunNotFoundError):
                await manager.bus.backend.delete_run(entry["run_id"])
    await runtime.thread_services.records.delete(thread_id)
    await backend.release_thread(thread_id, principal_of(request).id or "")
    return JSONResponse({"thread_id": thread_id, "deleted": True, "runs_deleted": len(entries)})


def _check_thread_id(thread_id: str) -> None:
    if not THREAD_ID_PATTERN.match(thread_id):
        raise RuntimeHTTPError(
            f"Invalid thread id {thread_id[:40]!r}: use 1 to 128 letters, digits, '_', "
            "'.', ':' or '-', starting with a letter or digit",
            "VALIDATION_ERROR",
        )


async def _owned_thread(request: Request) -> str:
    """The thread named in the path, unless another caller owns it (404)."""
    thread_id: str = request.path_params["thread_id"]
    _check_thread_id(thread_id)
    owner = principal_of(request).id or ""
    backend = runtime_of(request).threads.backend
    if await backend.thread_owner(thread_id) != owner:
        raise RuntimeHTTPError(f"Thread '{thread_id}' not found", "NOT_FOUND")
    return thread_id


async def _caller_runs(
    request: Request, status: RunStatus | None, thread_id: str | None
) -> list[Run]:
    runs = runtime_of(request).require_runs()
    owner = principal_of(request).id
    if thread_id is not None:
        # the thread's background runs, from its record (none when it is not the caller's)
        if await runtime_of(request).threads.backend.thread_owner(thread_id) != (owner or ""):
            return []
        found = []
        for entry in await _entries(request, thread_id):
            if entry.get("via") in _BACKGROUND:
                run = await runs.get_run(entry["run_id"])
                if run is not None and (status is None or run.status == status):
                    found.append(run)
        return found
    listed = await runs.list_runs(status, MAX_LISTED, owner=owner)
    return [run for run in listed if run.owner == owner]


async def _entries(request: Request, thread_id: str) -> list[dict[str, Any]]:
    """The thread's record, newest first, background runs as their state says now (their
    record says what they were when last written)."""
    runtime = runtime_of(request)
    entries = await runtime.thread_services.records.entries(thread_id, THREAD_RECORD_RUNS)
    runs = runtime.runs
    for entry in entries:
        if runs is None or entry.get("via") not in _BACKGROUND or entry["status"] not in _GOING:
            continue
        run = await runs.get_run(entry["run_id"])
        if run is not None:
            entry["status"] = run.status.value
            entry["started_at"] = run.started_at.isoformat() if run.started_at else None
            entry["completed_at"] = run.completed_at.isoformat() if run.completed_at else None
            if run.terminal:
                entry["output"], entry["error"] = run.output, run.error
    return entries


def _entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("holder", "created_us")}


def _entry_page(request: Request, entries: list[dict[str, Any]]) -> dict[str, Any]:
    limit = int_query(request, "limit", 20, 1, 100)
    offset = int_query(request, "offset", 0, 0, MAX_LISTED)
    page = entries[offset : offset + limit]
    return {
        "runs": page,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(entries) > offset + limit else None,
    }


def _page(request: Request, runs: list[Run]) -> dict[str, Any]:
    limit = int_query(request, "limit", 20, 1, 100)
    offset = int_query(request, "offset", 0, 0, MAX_LISTED)
    page = runs[offset : offset + limit]
    more = len(runs) > offset + limit
    return {
        "runs": [run.to_response() for run in page],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }

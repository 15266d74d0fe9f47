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

from dockrion_events import InvalidRunIdError, RunNotFoundError, RunStatus, validate_run_id

from ..auth import principal_of
from ..engine.conversations import THREAD_ID_PATTERN
from ..engine.thread_records import THREAD_RECORD_RUNS
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from .run_access import int_query

__all__ = ["MAX_LISTED", "delete_thread", "get_thread", "list_runs", "thread_runs"]

_BACKGROUND = ("background", "ag-ui")  # runs with a state of their own (`GET /runs/{id}`)
_GOING = (RunStatus.ACCEPTED.value, RunStatus.RUNNING.value)
Place = tuple[int, str]  # a run's place in listings: (created µs, run id), newest first

# The most runs one listing looks through for those of a status (it says where to go on),
# and the largest offset (a page is at most 100 runs).
MAX_LISTED = 1000


async def list_runs(request: Request) -> Response:
    """`GET /runs?status=&thread_id=&limit=&cursor=` (or `&offset=`): the caller's runs,
    newest first, from the caller's index (the thread's record with `thread_id`)."""
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
    limit, offset, cursor = _paging(request)
    if thread_id is not None:
        found = await _thread_background_runs(request, thread_id, status, cursor)
        return JSONResponse(_page(found, limit, offset))
    found, resume = await _owner_runs(request, status, cursor, offset + limit + 1)
    return JSONResponse(_page(found, limit, offset, resume))


async def thread_runs(request: Request) -> Response:
    """`GET /threads/{thread_id}/runs?limit=&cursor=` (or `&offset=`): the thread's runs,
    every way they came in (`via`), newest first, with their input and output."""
    thread_id = await _owned_thread(request)
    limit, offset, cursor = _paging(request)
    found = [
        (_place(entry), _entry_view(entry))
        for entry in await _entries(request, thread_id)
        if cursor is None or _place(entry) < cursor
    ]
    return JSONResponse(_page(found, limit, offset))


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


async def _owner_runs(
    request: Request, status: RunStatus | None, cursor: Place | None, wanted: int
) -> tuple[list[tuple[Place, dict[str, Any]]], Place | None]:
    """Up to `wanted` of the caller's runs after `cursor` with `status`, from the caller's
    index, looking through at most `MAX_LISTED` runs; with the place to go on from when
    that many were looked through first (None otherwise)."""
    backend = runtime_of(request).require_runs().bus.backend
    owner = principal_of(request).id
    found: list[tuple[Place, dict[str, Any]]] = []
    looked = 0
    while len(found) < wanted:
        if looked >= MAX_LISTED:
            return found, cursor
        batch = await backend.owner_runs(owner, limit=100, before=cursor)
        if not batch:
            break
        for created, run in batch:
            if status is None or run.status == status:
                found.append(((created, run.run_id), run.to_response()))
        looked += len(batch)
        cursor = (batch[-1][0], batch[-1][1].run_id)
    return found, None


async def _thread_background_runs(
    request: Request, thread_id: str, status: RunStatus | None, cursor: Place | None
) -> list[tuple[Place, dict[str, Any]]]:
    """The thread's background runs, from its record (none when it is not the caller's)."""
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    owner = principal_of(request).id or ""
    if await runtime.threads.backend.thread_owner(thread_id) != owner:
        return []
    found = []
    for entry in await _entries(request, thread_id):
        if entry.get("via") not in _BACKGROUND or (cursor and _place(entry) >= cursor):
            continue
        run = await runs.get_run(entry["run_id"])
        if run is not None and (status is None or run.status == status):
            found.append((_place(entry), run.to_response()))
    return found


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


def _place(entry: dict[str, Any]) -> Place:
    return int(entry["created_us"]), str(entry["run_id"])


def _paging(request: Request) -> tuple[int, int, Place | None]:
    """`limit`, `offset` and `cursor` (a `next_cursor` a page gave: `<µs>.<run id>`)."""
    limit = int_query(request, "limit", 20, 1, 100)
    offset = int_query(request, "offset", 0, 0, MAX_LISTED)
    raw = request.query_params.get("cursor")
    if raw is None:
        return limit, offset, None
    created, _, run_id = raw.partition(".")
    try:
        validate_run_id(run_id)
    except InvalidRunIdError:
        created = ""
    if not (created.isascii() and created.isdigit() and len(created) <= 20):
        raise RuntimeHTTPError(
            f"cursor must be a next_cursor a listing gave, got {raw[:60]!r}", "VALIDATION_ERROR"
        )
    return limit, offset, (int(created), run_id)


def _page(
    found: list[tuple[Place, dict[str, Any]]],
    limit: int,
    offset: int,
    resume: Place | None = None,
) -> dict[str, Any]:
    """One page: `next_cursor` (stable while runs are created) and `next_offset`."""
    page = found[offset : offset + limit]
    more = len(found) > offset + limit
    if more:
        resume = page[-1][0]
    return {
        "runs": [item for _, item in page],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
        "next_cursor": f"{resume[0]}.{resume[1]}" if resume is not None else None,
    }

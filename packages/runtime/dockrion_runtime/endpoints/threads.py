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
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from .run_access import int_query

__all__ = ["MAX_LISTED", "delete_thread", "get_thread", "list_runs", "thread_runs"]

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
    """`GET /threads/{thread_id}/runs?limit=&offset=`: the thread's runs, newest first."""
    thread_id = await _owned_thread(request)
    return JSONResponse(_page(request, await _caller_runs(request, None, thread_id)))


async def get_thread(request: Request) -> Response:
    """`GET /threads/{thread_id}`: its status (idle, busy, interrupted or error), its latest
    values (the agent's checkpoints, else its latest run's output), created and updated
    times and metadata."""
    thread_id = await _owned_thread(request)
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    runs = await _caller_runs(request, None, thread_id)
    state = await agent.thread_state(thread_id)
    if state is None and not runs:
        raise RuntimeHTTPError(f"Thread '{thread_id}' not found", "NOT_FOUND")
    latest = runs[0] if runs else None
    busy = await runtime.threads.backend.thread_turn_holder(thread_id) is not None
    if busy or (latest is not None and not latest.terminal):
        status = "busy"
    elif (state is not None and state.interrupted) or (
        latest is not None and latest.metadata.get("interrupted")
    ):
        status = "interrupted"
    elif latest is not None and latest.status == RunStatus.FAILED:
        status = "error"
    else:
        status = "idle"
    values: Any = state.values if state is not None else _latest_output(runs)
    values = runtime.supervisor.check_output(values)[0]  # redacted like every output
    times = [run.created_at for run in runs]
    updated = [t for run in runs for t in (run.completed_at, run.started_at) if t is not None]
    if state is not None and state.updated_at is not None:
        updated.append(state.updated_at)
    return JSONResponse(
        {
            "thread_id": thread_id,
            "status": status,
            "values": values,
            "created_at": min(times).isoformat() if times else None,
            "updated_at": max([*updated, *times]).isoformat() if updated or times else None,
            "metadata": {"runs": len(runs), "latest_run_id": latest.run_id if latest else None},
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
    runs = await _caller_runs(request, None, thread_id)
    await agent.forget_thread(thread_id)
    manager = runtime.require_runs()
    for run in runs:
        with contextlib.suppress(RunNotFoundError):
            await manager.bus.backend.delete_run(run.run_id)
    await backend.release_thread(thread_id, principal_of(request).id or "")
    return JSONResponse({"thread_id": thread_id, "deleted": True, "runs_deleted": len(runs)})


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
    found = await runs.list_runs(status, MAX_LISTED, owner=owner)
    return [
        run
        for run in found
        if run.owner == owner and (thread_id is None or run.metadata.get("thread_id") == thread_id)
    ]


def _latest_output(runs: list[Run]) -> Any:
    for run in runs:
        if run.status == RunStatus.COMPLETED:
            return run.output
    return None


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

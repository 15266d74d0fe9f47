"""Pattern B, background runs: `POST /runs` starts one, `GET /runs/{run_id}` reads its
state, `GET /runs/{run_id}/events` replays its log and follows it live (Server-Sent
Events, resumable), `DELETE /runs/{run_id}` cancels it and stops the agent.

A run belongs to the principal that created it; to anyone else it does not exist (404).
A run id a client chooses (`?run_id=`) lives in the caller's own namespace: when callers
authenticate, the run's id is the chosen id followed by a tag of the caller
(`order-42-1f2e3d4c5b6a`), so the answer never depends on what other callers created and
nobody can learn, by choosing ids, which runs exist. Without authentication there is one
caller and the id is used as given.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import InvalidRunIdError, Run, RunFinishedError, validate_run_id

from ..agents import RunOptions
from ..auth.base import principal_of
from ..engine.conversations import THREAD_OWNERSHIP_SECONDS
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..wire.sse import EventStreamResponse

__all__ = [
    "MAX_CLIENT_RUN_ID",
    "MAX_SEQUENCE",
    "MAX_SUBSCRIPTION_TIMEOUT",
    "cancel_run",
    "create_run",
    "get_run",
    "owned_run",
    "resume_run",
    "run_events",
    "scoped_run_id",
    "start_run",
]

_TAG_LENGTH = 12
# Run ids are at most 128 characters; an authenticated caller's tag takes 13 of them.
MAX_CLIENT_RUN_ID = 128 - _TAG_LENGTH - 1

# A sequence number, as a client may send it back: a non-negative integer below 10**18.
_MAX_SEQUENCE_DIGITS = 18
MAX_SEQUENCE = 10**_MAX_SEQUENCE_DIGITS - 1
_SEQUENCE = re.compile(rf"[0-9]{{1,{_MAX_SEQUENCE_DIGITS}}}")
# The longest `?timeout=` (seconds) a subscription may ask for: the run goes on after it.
MAX_SUBSCRIPTION_TIMEOUT = 3600


async def create_run(request: Request) -> Response:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    runtime.require_runs()
    payload = await runtime.body.read(request)
    owner = principal_of(request).id
    requested = request.query_params.get("run_id")
    if requested is not None:
        requested = scoped_run_id(validate_run_id(requested), owner)
    options = await runtime.threads.options(request, agent)
    return await _start(request, payload, requested, options)


async def resume_run(request: Request) -> Response:
    """`POST /runs/{run_id}/resume`: the body is the value the interrupted run waits for;
    a new run continues the same thread from the interrupt. A run whose interrupt was
    already answered (its thread no longer waits at it) is 409."""
    run = await owned_run(request)
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    value = await runtime.body.read(request, check=False)
    output = run.output if isinstance(run.output, dict) else {}
    thread_id = run.metadata.get("thread_id")
    if not output.get("__interrupt__") or not thread_id:
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' is not waiting at an interrupt ({run.status.value}); only a "
            "run that stopped at interrupt() can be resumed",
            "CONFLICT",
        )
    options = await runtime.threads.claim(request, agent, thread_id)
    waiting = {str(item.get("id")) for item in output["__interrupt__"] if isinstance(item, dict)}
    pending = await agent.pending_interrupts(thread_id)
    if pending is not None and not waiting & pending:
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' was already resumed: its thread no longer waits at its interrupt",
            "CONFLICT",
        )
    # Two resumes sent at once both find the interrupt waiting: one claim, one run.
    backend = runtime.threads.backend
    if not await backend.claim_resume(run.run_id, THREAD_OWNERSHIP_SECONDS):
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' was already resumed: its thread no longer waits at its interrupt",
            "CONFLICT",
        )
    resume = RunOptions(thread_id=options.thread_id, resume=value, resuming=True)
    try:
        return await _start(request, None, None, resume, resumed_from=run.run_id)
    except BaseException:
        await backend.release_resume(run.run_id)  # nothing started: it may be tried again
        raise


async def start_run(
    request: Request,
    payload: Any,
    requested: str | None,
    options: RunOptions | None,
    metadata: dict[str, Any] | None = None,
) -> Run:
    """Create a run owned by the caller (its thread id and `metadata` recorded) and start
    its agent in the background."""
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    runs = runtime.require_runs()
    metadata = dict(metadata or {})
    if options is not None and options.thread_id is not None:
        metadata["thread_id"] = options.thread_id
    run = await runs.create_run(requested, owner=principal_of(request).id, metadata=metadata)
    context = runs.get_context(run.run_id)
    assert context is not None
    runtime.bind(context, request)
    context.thread_id = options.thread_id if options else None
    supervisor = runtime.supervisor
    task = supervisor.spawn(supervisor.execute_run(runs, agent, payload, context, options))
    context.on_cancel(lambda: _cancel(task))
    return run


async def _start(
    request: Request,
    payload: Any,
    requested: str | None,
    options: RunOptions | None,
    resumed_from: str | None = None,
) -> Response:
    """Create a run, start its agent in the background, answer 202."""
    metadata = {"resumed_from": resumed_from} if resumed_from is not None else None
    run = await start_run(request, payload, requested, options, metadata)
    return JSONResponse(
        {
            "run_id": run.run_id,
            "status": run.status.value,
            "events_url": f"/runs/{run.run_id}/events",
            "created_at": run.created_at.isoformat(),
        },
        status_code=202,
    )


def scoped_run_id(requested: str, owner: str | None) -> str:
    """The id of a run whose caller chose `requested`: as given for the anonymous caller,
    else followed by a tag of the owner, so that different callers never share an id."""
    if owner is None:
        return requested
    tag = hashlib.sha256(owner.encode()).hexdigest()[:_TAG_LENGTH]
    if len(requested) > MAX_CLIENT_RUN_ID:
        raise InvalidRunIdError(
            f"Run id must be {MAX_CLIENT_RUN_ID} characters or less when callers authenticate "
            f"(a {_TAG_LENGTH + 1}-character tag of the caller is added)"
        )
    return f"{requested}-{tag}"


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


async def owned_run(request: Request) -> Run:
    """The run named in the path, if it exists and belongs to the caller (else 404)."""
    runs = runtime_of(request).require_runs()
    run_id = request.path_params["run_id"]
    validate_run_id(run_id)
    run = await runs.get_run(run_id)
    if run is None or not _may_see(request, run):
        raise RuntimeHTTPError(f"Run '{run_id}' not found", "NOT_FOUND")
    return run


def _may_see(request: Request, run: Run) -> bool:
    """A run is its owner's; with roles configured, `read_logs` also lets a caller read
    (never cancel or resume) other callers' runs."""
    principal = principal_of(request)
    if run.owner == principal.id:
        return True
    reader = runtime_of(request).access.enforced and "read_logs" in principal.permissions
    return reader and request.method == "GET"


async def get_run(request: Request) -> Response:
    run = await owned_run(request)
    return JSONResponse(run.to_response())


async def cancel_run(request: Request) -> Response:
    run = await owned_run(request)
    reason = request.query_params.get("reason") or "User requested cancellation"
    try:
        cancelled = await runtime_of(request).require_runs().cancel_run(run.run_id, reason)
    except RunFinishedError as exc:
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' already finished ({exc.status}); nothing to cancel",
            "VALIDATION_ERROR",
        ) from None
    return JSONResponse({"run_id": cancelled.run_id, "status": cancelled.status.value})


def _resume_from(request: Request) -> int:
    """The first sequence to send: `Last-Event-ID: N` means "I have N" (resume after it) and
    wins over `?from_sequence=N`, which is inclusive."""
    start = _int_query(request, "from_sequence", 0, 0, None)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        # ASCII digits only: str.isdigit() also admits "²" and other digits int() refuses.
        if not _SEQUENCE.fullmatch(last_event_id):
            raise RuntimeHTTPError(
                "Last-Event-ID must be the sequence number of an event (at most "
                f"{_MAX_SEQUENCE_DIGITS} ASCII digits)",
                "VALIDATION_ERROR",
            )
        start = int(last_event_id) + 1
    return start


async def run_events(request: Request) -> EventStreamResponse:
    ag_ui = runtime_of(request).settings.ag_ui.enabled
    if ag_ui and request.query_params.get("format") == "ag-ui":
        from .ag_ui import replay_run  # imported on use: it imports this module

        return await replay_run(request)
    run = await owned_run(request)
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    start = _resume_from(request)
    timeout = _int_query(
        request, "timeout", runtime.settings.default_timeout, 1, MAX_SUBSCRIPTION_TIMEOUT
    )
    # Refuses (410, with the first sequence still kept) a cursor the log no longer holds.
    await runs.bus.backend.read(run.run_id, start - 1, timeout=0)
    release = runtime.subscribers.acquire(run.run_id)
    return runtime.event_stream(
        runs.bus.subscribe(run.run_id, start, heartbeat=runtime.settings.heartbeat_interval),
        run.run_id,
        on_close=release,
        timeout=float(timeout),
    )


def _int_query(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if _SEQUENCE.fullmatch(raw) else low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RuntimeHTTPError(
            f"Query parameter '{name}' must be an integer {bounds}, got {raw[:40]!r}",
            "VALIDATION_ERROR",
        )
    return value

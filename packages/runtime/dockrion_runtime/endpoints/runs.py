"""Pattern B, background runs: `POST /runs` starts one, `GET /runs/{run_id}` reads its
state, `GET /runs/{run_id}/events` replays its log and follows it live (Server-Sent
Events, resumable), `DELETE /runs/{run_id}` cancels it and stops the agent.

A run belongs to the principal that created it; to anyone else it does not exist (404).
A run id a client chooses (`?run_id=`) is the run's id exactly, whoever calls; an id any
run holds is 409 CONFLICT, the same answer whoever holds it, so it says nothing about the
other run (unguessable ids, such as UUIDs, never meet).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import Run, RunFinishedError, validate_run_id

from ..agents import RunOptions
from ..engine.conversations import RESUME_CLAIM_SECONDS
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..wire.sse import EventStreamResponse
from .ag_ui import replay_run
from .run_access import (
    MAX_SUBSCRIPTION_TIMEOUT,
    int_query,
    owned_run,
    resume_from,
    start_run,
)

__all__ = [
    "cancel_run",
    "create_run",
    "get_run",
    "resume_run",
    "run_events",
]


async def create_run(request: Request) -> Response:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    runtime.require_runs()
    payload = await runtime.body.read(request)
    requested = request.query_params.get("run_id")
    if requested is not None:
        validate_run_id(requested)
    options = await runtime.threads.options(request, agent, background=True)
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
    try:
        return await _resume(request, run, options, value)
    except BaseException:
        if options.turn is not None:
            await options.turn.end()  # nothing started: its thread's turn goes to the next
        raise


async def _resume(request: Request, run: Run, options: RunOptions, value: Any) -> Response:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    thread_id = str(options.thread_id)
    output = run.output if isinstance(run.output, dict) else {}
    waiting = {str(item.get("id")) for item in output["__interrupt__"] if isinstance(item, dict)}
    pending = await agent.pending_interrupts(thread_id)
    if pending is not None and not waiting & pending:
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' was already resumed: its thread no longer waits at its interrupt",
            "CONFLICT",
        )
    # Two resumes sent at once both find the interrupt waiting: one claim, one run.
    backend = runtime.threads.backend
    if not await backend.claim_resume(run.run_id, RESUME_CLAIM_SECONDS):
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' was already resumed: its thread no longer waits at its interrupt",
            "CONFLICT",
        )
    resume = dataclasses.replace(options, resume=value, resuming=True)
    try:
        trace = run.metadata.get("trace")
        parent = trace.get("traceparent") if isinstance(trace, dict) else None
        return await _start(
            request, None, None, resume, resumed_from=run.run_id, trace_parent=parent
        )
    except BaseException:
        await backend.release_resume(run.run_id)  # nothing started: it may be tried again
        raise


async def _start(
    request: Request,
    payload: Any,
    requested: str | None,
    options: RunOptions | None,
    resumed_from: str | None = None,
    trace_parent: str | None = None,
) -> Response:
    """Create a run, start its agent in the background, answer 202."""
    metadata = {"resumed_from": resumed_from} if resumed_from is not None else None
    run = await start_run(request, payload, requested, options, metadata, trace_parent)
    return JSONResponse(
        {
            "run_id": run.run_id,
            "status": run.status.value,
            "events_url": f"/runs/{run.run_id}/events",
            "created_at": run.created_at.isoformat(),
        },
        status_code=202,
    )


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
            "CONFLICT",
        ) from None
    return JSONResponse({"run_id": cancelled.run_id, "status": cancelled.status.value})


async def run_events(request: Request) -> EventStreamResponse:
    ag_ui = runtime_of(request).settings.ag_ui.enabled
    if ag_ui and request.query_params.get("format") == "ag-ui":
        return await replay_run(request)
    run = await owned_run(request)
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    start = resume_from(request)
    timeout = int_query(
        request, "timeout", runtime.settings.default_timeout, 1, MAX_SUBSCRIPTION_TIMEOUT
    )
    # Refuses (410, with the first sequence still kept) a cursor the log no longer holds.
    await runs.bus.backend.read(run.run_id, start - 1, timeout=0)
    release = await runtime.subscriber_place(request, run.run_id)
    tracer = runtime.telemetry.tracer
    if tracer is not None:  # the subscription, in the run's trace, on whichever instance
        release = tracer.subscription(run.run_id, run.metadata, start, release)
    return runtime.event_stream(
        runs.bus.subscribe(run.run_id, start, heartbeat=runtime.settings.heartbeat_interval),
        run.run_id,
        on_close=release,
        timeout=float(timeout),
    )

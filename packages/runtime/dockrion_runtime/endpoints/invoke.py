"""Pattern A: `POST /invoke` returns the agent's output as JSON; `POST /invoke/stream`
streams the run's events as Server-Sent Events while the agent runs.

`/invoke/stream` runs on a private one-run log (no shared backend): nothing else can read
it, and a streaming client that goes away cancels the agent. `/invoke` has no log at all:
nobody reads its events, so they are numbered, filtered and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dockrion_events import RunStatus, StreamContext

from ..agents import Agent
from ..auth import principal_of
from ..engine.encoding import FastJSONResponse
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..wire.sse import EventStreamResponse

__all__ = ["invoke", "invoke_stream"]

log = logging.getLogger("dockrion.runtime")


async def invoke(request: Request) -> Response:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    payload = await runtime.body.read(request)
    context = runtime.supervisor.detached_context()  # nobody streams it: no run log
    runtime.bind(context, request)
    release = await runtime.slots.take(principal_of(request), "runs")
    try:
        return await _invoke(request, agent, payload, context)
    finally:
        release()


async def _invoke(request: Request, agent: Agent, payload: Any, context: StreamContext) -> Response:
    runtime = runtime_of(request)
    supervisor = runtime.supervisor
    started = time.perf_counter()
    options = await runtime.threads.options(request, agent)
    context.thread_id = options.thread_id if options else None
    options = await runtime.thread_services.records.open(options, context.run_id, "invoke", payload)
    record = options.record if options is not None else None
    turn = options.turn if options is not None else None
    if turn is not None:
        # a new run on the thread (interrupt, rollback) stops the call, with its reason
        turn.stop_with(asyncio.current_task().cancel)  # type: ignore[union-attr]
    try:
        tracer = runtime.telemetry.tracer
        origin = tracer.origin(request.headers.get("traceparent")) if tracer else None
        result = await supervisor.invoke(agent, payload, context, options, origin)
        output, problems = supervisor.check_output(result.output)
    except asyncio.CancelledError:
        if record is not None:
            await record.failed(asyncio.CancelledError())
        if turn is None or turn.stopped is None:
            raise  # the client went away
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        raise RuntimeHTTPError(
            f"The call was cancelled: {turn.stopped}", "CONFLICT", {"thread_id": turn.thread_id}
        ) from None
    except BaseException as exc:
        if record is not None:
            await record.failed(exc)
        if turn is not None:
            await turn.end()  # given back already, unless it failed before the run began
        raise
    if record is not None:
        await record.ended(RunStatus.COMPLETED, output)
    metadata: dict[str, Any] = supervisor.metadata(
        **result.metadata, latency_seconds=round(time.perf_counter() - started, 3)
    )
    if problems:
        log.warning("agent output does not match io_schema.output: %s", problems)
        metadata["output_schema_errors"] = problems
    return FastJSONResponse({"success": True, "output": output, "metadata": metadata})


async def invoke_stream(request: Request) -> EventStreamResponse:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    payload = await runtime.body.read(request)
    run_id, batches, task = await runtime.start_private_run(request, agent, payload)

    def client_gone() -> None:
        task.cancel()  # the supervisor then ends the log with `cancelled` and stops the agent

    return runtime.event_stream(batches, run_id, on_disconnect=client_gone)

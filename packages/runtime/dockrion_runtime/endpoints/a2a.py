"""A2A for other agents: `POST /a2a` answers A2A 1.0's JSON-RPC methods, `SendMessage`,
`SendStreamingMessage`, `GetTask`, `CancelTask` and `SubscribeToTask`
(`a2a_card.py` serves the agent card that points here).

A task is a background run of the caller (its id is the run id; `GET /runs/{id}` and
`DELETE /runs/{id}` see the same run) and a `contextId` is the run's thread. Streams are
read from the run's log: `SubscribeToTask` sends the task as it stands and then every
later update, nothing lost or repeated, whenever the client comes back. A message that
names a task waiting in `TASK_STATE_INPUT_REQUIRED` answers its interrupt: the next run
of the context, a new task. Refusals of who the caller is or how much it may do (401,
403, 429), of the body's size, time or type (413, 408, 415) and 503 are HTTP answers;
every other refusal is a JSON-RPC error with A2A's code and the runtime's code as its
reason.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import EventRecord, EventsError, Run, RunFinishedError, validate_run_id

from ..agents import RunOptions
from ..engine.conversations import RESUME_CLAIM_SECONDS
from ..errors import RuntimeHTTPError
from ..runtime import Runtime, runtime_of
from ..wire.a2a import RUN_STATES, A2aTask, jsonrpc_frame, terminal_state
from ..wire.a2a_input import RpcError, RpcRequest, UserMessage, parse_message, parse_request
from ..wire.a2a_input import rpc_error as error_answer
from ..wire.sse import EventStreamResponse
from .a2a_card import PROTOCOL_VERSION
from .run_access import MAX_SUBSCRIPTION_TIMEOUT, may_see, start_run

__all__ = ["rpc"]

# Refusals answered over HTTP as they are (the runtime's one error body): who the caller
# is and what it may do, how much it may send or hold, whether the server can serve now.
_HTTP_STATUSES = frozenset({401, 403, 408, 413, 415, 429, 503})
_RPC_CODES = {
    "NOT_FOUND": -32001,
    "CONFLICT": -32002,
    "VALIDATION_ERROR": -32602,
    "POLICY_VIOLATION": -32602,
}
_READ_LIMIT = 10_000  # reads of a log while folding it into a task, a bound on a loop


async def rpc(request: Request) -> Response | EventStreamResponse:
    """`POST /a2a`: one JSON-RPC request."""
    runtime = runtime_of(request)
    request_id: Any = None
    try:
        _check_version(request)
        try:
            body = await runtime.body.read(request, check=False)
        except RuntimeHTTPError as exc:
            if exc.code == "VALIDATION_ERROR":
                raise RpcError(-32700, exc.message, "INVALID_JSON") from None
            raise
        call = parse_request(body)
        request_id = call.request_id
        if not runtime.settings.async_runs:
            raise RpcError(
                -32603,
                "A2A runs the agent as a background run: set streaming.async_runs: true",
                "AGENT_NOT_READY",
            )
        return await _dispatch(request, runtime, call)
    except RpcError as exc:
        return JSONResponse(error_answer(request_id, exc))
    except RuntimeHTTPError as exc:
        if exc.status in _HTTP_STATUSES:
            raise
        code = _RPC_CODES.get(exc.code, -32603)
        return JSONResponse(error_answer(request_id, RpcError(code, exc.message, exc.code)))
    except EventsError as exc:
        code = -32001 if exc.code == "NOT_FOUND" else -32603
        return JSONResponse(error_answer(request_id, RpcError(code, str(exc), exc.code)))


def _check_version(request: Request) -> None:
    version = request.headers.get("a2a-version")
    if version and version.strip() not in ("1", "1.0", "1.0.0"):
        raise RpcError(
            -32009,
            f"A2A version {version[:20]!r} is not supported; this agent speaks {PROTOCOL_VERSION}",
            "VERSION_NOT_SUPPORTED",
        )


async def _dispatch(
    request: Request, runtime: Runtime, call: RpcRequest
) -> Response | EventStreamResponse:
    method = call.method
    if method == "SendMessage":
        run, task = await _send(request, runtime, call)
        wait = call.params.get("configuration") or {}
        immediately = isinstance(wait, dict) and wait.get("returnImmediately") is True
        if not immediately:
            await _fold(runtime, run.run_id, task, wait_for_end=True)
        return _result(call, {"task": task.snapshot()})
    if method == "SendStreamingMessage":
        run, task = await _send(request, runtime, call)
        return await _stream(request, runtime, call, task, after=-1, timeout=None)
    if method == "GetTask":
        run = await _owned(request, call.params)
        task = _task_of(runtime, run)
        await _fold(runtime, run.run_id, task, wait_for_end=False, run=run)
        return _result(call, task.snapshot())
    if method == "CancelTask":
        run = await _owned(request, call.params)
        try:
            await runtime.require_runs().cancel_run(run.run_id, "Cancelled by the A2A client")
        except RunFinishedError as exc:
            raise RpcError(
                -32002, f"Task '{run.run_id}' already ended ({exc.status})", "CONFLICT"
            ) from None
        task = _task_of(runtime, run)
        await _fold(runtime, run.run_id, task, wait_for_end=False, run=run)
        return _result(call, task.snapshot())
    if method == "SubscribeToTask":
        run = await _owned(request, call.params)
        task = _task_of(runtime, run)
        last = await _fold(runtime, run.run_id, task, wait_for_end=False)
        if terminal_state(task.state):
            raise RpcError(
                -32004,
                f"Task '{run.run_id}' is in a terminal state ({task.state}); GetTask reads it",
                "CONFLICT",
            )
        timeout = float(min(runtime.settings.default_timeout, MAX_SUBSCRIPTION_TIMEOUT))
        return await _stream(request, runtime, call, task, after=last, timeout=timeout)
    raise RpcError(-32601, f"Method {method[:60]!r} not found", "NOT_FOUND")


def _result(call: RpcRequest, result: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"jsonrpc": "2.0", "id": call.request_id, "result": result})


async def _owned(request: Request, params: dict[str, Any]) -> Run:
    """The task (run) `params.id` names, when it is the caller's; else -32001."""
    task_id = params.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise RpcError(-32602, "params.id must be a task id", "VALIDATION_ERROR")
    return await _owned_run(request, task_id)


async def _owned_run(request: Request, task_id: str) -> Run:
    runs = runtime_of(request).require_runs()
    try:
        validate_run_id(task_id)
    except EventsError:
        raise RpcError(-32001, f"Task '{task_id[:64]}' not found", "NOT_FOUND") from None
    run = await runs.get_run(task_id)
    if run is None or not may_see(request, run):
        raise RpcError(-32001, f"Task '{task_id}' not found", "NOT_FOUND")
    return run


def _context_of(run: Run) -> str:
    stored = run.metadata.get("a2a")
    context = stored.get("context_id") if isinstance(stored, dict) else None
    return str(context or run.metadata.get("thread_id") or run.run_id)


def _task_of(runtime: Runtime, run: Run) -> A2aTask:
    return A2aTask(
        task_id=run.run_id,
        context_id=_context_of(run),
        framework=runtime.settings.framework,
        metadata=_metadata(run),
    )


def _metadata(run: Run) -> dict[str, Any]:
    dockrion: dict[str, Any] = {"run_id": run.run_id, "events_url": f"/runs/{run.run_id}/events"}
    resumed_from = run.metadata.get("resumed_from")
    if resumed_from:
        dockrion["resumed_from"] = resumed_from
    return {"dockrion": dockrion}


async def _fold(
    runtime: Runtime, run_id: str, task: A2aTask, *, wait_for_end: bool, run: Run | None = None
) -> int:
    """Feed the run's log to `task`: what is stored now, or (`wait_for_end`) up to its end
    or the run's time limit. Returns the last sequence fed (-1 for none). A log no longer
    kept whole leaves the task at the run's status (`run`)."""
    backend = runtime.require_runs().bus.backend
    after = -1
    limit = runtime.settings.default_timeout
    deadline = float(limit) if wait_for_end and limit > 0 else None
    # waiting: one read returns at the first new event (or after a heartbeat's time)
    read_wait = float(runtime.settings.heartbeat_interval or 15) if wait_for_end else 0.0
    try:
        async with asyncio.timeout(deadline):
            for _ in range(_READ_LIMIT):
                records, finished = await backend.read(run_id, after, timeout=read_wait)
                for record in records:
                    task.feed(record.sequence, record.type, _data(record))
                    after = record.sequence
                if finished or (not records and not wait_for_end):
                    break
    except TimeoutError:
        pass  # the task as it stands: the client reads it again later
    except EventsError as exc:
        if exc.code != "EVENTS_EXPIRED" or run is None:
            raise
        task.set_state(RUN_STATES.get(run.status.value, "TASK_STATE_UNSPECIFIED"))
    return after


def _data(record: EventRecord) -> dict[str, Any]:
    data = json.loads(record.data)
    return data if isinstance(data, dict) else {}


async def _stream(
    request: Request,
    runtime: Runtime,
    call: RpcRequest,
    task: A2aTask,
    *,
    after: int,
    timeout: float | None,
) -> EventStreamResponse:
    runs = runtime.require_runs()
    run_id = task.task_id
    release = await runtime.subscriber_place(request, run_id)
    batches = runs.bus.subscribe(run_id, after + 1, heartbeat=runtime.settings.heartbeat_interval)
    return runtime.event_stream(
        _frames(batches, task, call.request_id, after),
        run_id,
        on_close=release,
        timeout=timeout,
        heartbeat_events=False,  # A2A clients read every data line as a JSON-RPC response
    )


def _frame(sequence: int, kind: str, request_id: Any, result: dict[str, Any]) -> EventRecord:
    data = jsonrpc_frame(request_id, result)
    return EventRecord(sequence, kind, data, frame=f"data: {data}\n\n".encode())


async def _frames(
    batches: AsyncIterator[list[EventRecord]], task: A2aTask, request_id: Any, after: int
) -> AsyncIterator[list[EventRecord]]:
    """The task as it stands, then the updates of every later stored event."""
    try:
        yield [_frame(max(after, 0), "task", request_id, {"task": task.snapshot()})]
        async for batch in batches:
            frames: list[EventRecord] = []
            for record in batch:
                for update in task.feed(record.sequence, record.type, _data(record)):
                    frames.append(_frame(record.sequence, record.type, request_id, update))
            if frames or not batch:
                yield frames
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


async def _send(request: Request, runtime: Runtime, call: RpcRequest) -> tuple[Run, A2aTask]:
    """Start the run a message asks for: a new task in its context, or the answer to the
    interrupt of the task it names."""
    message = parse_message(call.params)
    agent = runtime.require_agent()
    if message.task_id is not None:
        run = await _resume(request, runtime, message)
    else:
        settings = runtime.settings
        payload = message.payload(settings.framework, settings.a2a.message_field)
        problems = runtime.body.checker.problems(payload)
        if problems:
            raise RuntimeHTTPError(
                "Input validation failed (the agent's input made from the A2A message)",
                "VALIDATION_ERROR",
                problems,
            )
        context_id = message.context_id or f"ctx-{uuid.uuid4().hex}"
        options: RunOptions | None = None
        if agent.thread_refusal() is None:
            options = await runtime.threads.claim(request, agent, context_id)
        metadata = {"a2a": {"context_id": context_id, "message_id": message.message_id}}
        run = await start_run(request, payload, None, options, metadata)
    return run, _task_of(runtime, run)


async def _resume(request: Request, runtime: Runtime, message: UserMessage) -> Run:
    """A follow-up message to a task stopped at interrupts: the next run of its thread."""
    assert message.task_id is not None
    previous = await _owned_run(request, message.task_id)
    output = previous.output if isinstance(previous.output, dict) else {}
    thread_id = previous.metadata.get("thread_id")
    context_id = _context_of(previous)
    if message.context_id is not None and message.context_id != context_id:
        raise RpcError(-32602, "message.contextId is not the task's context", "VALIDATION_ERROR")
    if not output.get("__interrupt__") or not thread_id:
        raise RpcError(
            -32004,
            f"Task '{previous.run_id}' does not wait for input ({previous.status.value}); send "
            "a message without taskId to start a new task",
            "CONFLICT",
        )
    agent = runtime.require_agent()
    options = await runtime.threads.claim(request, agent, str(thread_id))
    backend = runtime.threads.backend
    claimed = False
    try:
        waiting = {
            str(item.get("id")) for item in output["__interrupt__"] if isinstance(item, dict)
        }
        pending = await agent.pending_interrupts(str(thread_id))
        claimed = (pending is None or bool(waiting & pending)) and await backend.claim_resume(
            previous.run_id, RESUME_CLAIM_SECONDS
        )
        if not claimed:
            raise RpcError(-32004, f"Task '{previous.run_id}' was already answered", "CONFLICT")
        resume = RunOptions(
            thread_id=str(thread_id), resume=message.answer(), resuming=True, turn=options.turn
        )
        metadata = {
            "resumed_from": previous.run_id,
            "a2a": {"context_id": context_id, "message_id": message.message_id},
        }
        return await start_run(request, None, None, resume, metadata)
    except BaseException:
        if claimed:
            await backend.release_resume(previous.run_id)
        if options.turn is not None:
            await options.turn.end()
        raise

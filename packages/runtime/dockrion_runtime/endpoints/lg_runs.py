"""The LangGraph Server API's runs, on Dockrion's background runs: `POST
/threads/{thread_id}/runs/stream` (a run, streamed), `POST /threads/{thread_id}/runs`
(background), `POST /threads/{thread_id}/runs/wait` (its final values), their stateless
forms under `/runs`, `GET /threads/{thread_id}/runs[/{run_id}]`, `GET
/threads/{thread_id}/runs/{run_id}/stream` (join, from `Last-Event-ID`), `GET
.../join` and `POST .../cancel`.

Every run is a run of the caller's (owner filtered, in `GET /runs/{run_id}` too); a run on a
busy thread follows its `multitask_strategy`. The response that creates a run names it in
`Content-Location`; a stream the client may rejoin names its join URL in `Location`
(relative to the API's prefix, as the clients join it to their base URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import Run, RunFinishedError, RunNotFoundError

from ..agents import RunOptions
from ..engine.conversations import RESUME_CLAIM_SECONDS
from ..engine.thread_turns import MULTITASK_STRATEGIES
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..wire.lg_stream import STREAM_MODES, LgCursor, LgTranslator, lg_batches
from ..wire.sse import EventStreamResponse
from .lg_access import (
    LG_METADATA,
    caller_runs,
    check_assistant,
    interrupted,
    json_object,
    lg_status,
    owned_thread,
    run_record,
    thread_owner,
)
from .run_access import MAX_SUBSCRIPTION_TIMEOUT, owned_run, start_run

__all__ = [
    "cancel_run",
    "create_run",
    "get_run",
    "join_run",
    "join_stream",
    "list_runs",
    "stateless_stream",
    "stateless_wait",
    "stream_run",
    "wait_run",
]


@dataclasses.dataclass(frozen=True, slots=True)
class _Started:
    run: Run
    thread_id: str | None
    modes: list[str]
    on_disconnect: str


def _problem(name: str, message: str) -> RuntimeHTTPError:
    return RuntimeHTTPError(message, "VALIDATION_ERROR", [{"loc": ["body", name], "msg": message}])


def _modes(value: Any) -> list[str]:
    modes = [value] if isinstance(value, str) else value
    if modes is None:
        return ["values"]
    if not isinstance(modes, list) or not all(isinstance(mode, str) for mode in modes):
        raise _problem("stream_mode", "stream_mode must be a mode or a list of modes")
    unknown = [mode for mode in modes if mode not in STREAM_MODES]
    if unknown:
        raise _problem(
            "stream_mode",
            f"unknown stream mode {unknown[0][:40]!r}; modes: {', '.join(sorted(STREAM_MODES))}",
        )
    return modes or ["values"]


def _parts(modes: list[str], *, everything: bool) -> frozenset[str]:
    """What the run's log keeps for these modes (`RunOptions.stream_parts`); `everything`
    (background runs) keeps all three, so a join may ask for any mode."""
    kept = frozenset({"messages", "updates", "values"})
    if everything:
        return kept
    return frozenset({"messages" if mode == "messages-tuple" else mode for mode in modes}) & kept


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        raise _problem(name, f"{name} must be one of {', '.join(choices)}")
    return str(value)


async def _start(request: Request, thread_id: str | None, *, streaming: bool) -> _Started:
    """Check the body and start its run (on `thread_id`, None for a stateless run)."""
    runtime = runtime_of(request)
    if not runtime.settings.async_runs:
        raise RuntimeHTTPError(
            "The LangGraph API runs the agent as a background run: set streaming.async_runs: true",
            "AGENT_NOT_READY",
        )
    agent = runtime.require_agent()
    runtime.require_runs()
    body = await json_object(request)
    assistant_id = check_assistant(runtime, body.get("assistant_id"))
    modes = _modes(body.get("stream_mode"))
    strategy = _choice(body, "multitask_strategy", MULTITASK_STRATEGIES, "")
    if_not_exists = _choice(body, "if_not_exists", ("create", "reject"), "reject")
    resumable = bool(body.get("stream_resumable"))
    on_disconnect = _choice(
        body, "on_disconnect", ("cancel", "continue"), "continue" if resumable else "cancel"
    )
    command = body.get("command")
    if command is not None and not isinstance(command, dict):
        raise _problem("command", "command must be an object (resume, update)")
    command = command or {}
    if command.get("goto") is not None:
        raise RuntimeHTTPError(
            "command.goto is not supported; use command.resume (and command.update)",
            "NOT_IMPLEMENTED",
        )
    update = command.get("update")
    if update is not None and not isinstance(update, dict):
        raise _problem("command", "command.update must be an object of state keys")
    resuming = "resume" in command or update is not None
    payload = body.get("input")
    if not resuming:
        problems = runtime.body.checker.problems(payload if payload is not None else {})
        if problems:
            raise RuntimeHTTPError("Input validation failed", "VALIDATION_ERROR", problems)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _problem("metadata", "metadata must be an object")
    options: RunOptions | None = None
    stateful = thread_id is not None
    if thread_id is None and (agent.needs_thread or resuming):
        if resuming:
            raise _problem("command", "resuming needs a thread: send it to a thread's runs")
        thread_id = f"run-{uuid.uuid4().hex}"
    if thread_id is not None:
        owner = await thread_owner(request, thread_id)
        if owner is None and if_not_exists == "reject" and stateful:
            raise RuntimeHTTPError(
                f"Thread '{thread_id}' not found (create it first, or send if_not_exists: create)",
                "NOT_FOUND",
            )
        if resuming:
            options = await _resume_options(request, thread_id, command, strategy)
        else:
            options = await runtime.threads.claim(
                request, agent, thread_id, strategy=strategy or None
            )
    options = dataclasses.replace(
        options or RunOptions(), stream_parts=_parts(modes, everything=not streaming)
    )
    recorded = {
        "assistant_id": assistant_id,
        "stream_mode": modes,
        "multitask_strategy": strategy or runtime.settings.threads.multitask_strategy,
        "metadata": metadata or {},
    }
    try:
        run = await start_run(request, payload, None, options, {LG_METADATA: recorded})
    except BaseException:
        if options.turn is not None:
            await options.turn.end()
        raise
    return _Started(run, thread_id, modes, on_disconnect if streaming else "continue")


async def _resume_options(
    request: Request, thread_id: str, command: dict[str, Any], strategy: str
) -> RunOptions:
    """The options of a run that continues a thread waiting at an interrupt; 409 when it no
    longer waits (two resumes sent at once: one claim, one run)."""
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    pending = await agent.pending_interrupts(thread_id)
    stopped = [run for run in await caller_runs(request, thread_id) if interrupted(run)]
    if not stopped or (pending is not None and not pending):
        raise RuntimeHTTPError(
            f"Thread '{thread_id}' is not waiting at an interrupt; only a thread stopped at "
            "interrupt() can be resumed",
            "CONFLICT",
        )
    latest = stopped[0]
    backend = runtime.threads.backend
    if not await backend.claim_resume(latest.run_id, RESUME_CLAIM_SECONDS):
        raise RuntimeHTTPError(
            f"Thread '{thread_id}' was already resumed: it no longer waits at its interrupt",
            "CONFLICT",
        )
    try:
        claimed = await runtime.threads.claim(request, agent, thread_id, strategy=strategy or None)
    except BaseException:
        await backend.release_resume(latest.run_id)
        raise
    return dataclasses.replace(
        claimed, resume=command.get("resume"), resuming=True, update=command.get("update")
    )


def _paths(request: Request, started: _Started) -> tuple[str, str | None]:
    """(Content-Location, Location): the run's URL with the API's prefix, and the join
    stream's relative to it (the clients append it to their base URL)."""
    prefix = runtime_of(request).settings.langgraph_api.prefix
    run_id = started.run.run_id
    if started.thread_id is None or request.path_params.get("thread_id") is None:
        return f"{prefix}/runs/{run_id}", None
    base = f"/threads/{started.thread_id}/runs/{run_id}"
    return f"{prefix}{base}", f"{base}/stream"


def _stream(
    request: Request,
    run: Run,
    modes: list[str],
    after: LgCursor | None,
    *,
    headers: list[tuple[bytes, bytes]],
    cancel_on_disconnect: bool,
    release: Any,
    timeout: float | None,
) -> EventStreamResponse:
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    recorded = run.metadata.get(LG_METADATA)
    lg = recorded if isinstance(recorded, dict) else {}
    translator = LgTranslator(
        run_id=run.run_id,
        thread_id=run.metadata.get("thread_id"),
        assistant_id=str(lg.get("assistant_id") or ""),
        graph_id=runtime.settings.spec.agent.name,
        modes=modes,
    )
    batches = runs.bus.subscribe(run.run_id, 0, heartbeat=runtime.settings.heartbeat_interval)

    def cancel() -> None:
        task = asyncio.ensure_future(runs.cancel_run(run.run_id, "the client disconnected"))
        task.add_done_callback(_quiet)

    return runtime.event_stream(
        lg_batches(batches, translator, after),
        run.run_id,
        on_disconnect=cancel if cancel_on_disconnect else None,
        on_close=release,
        timeout=timeout,
        heartbeat_events=False,  # the clients read every data line as a stream part
        extra_headers=headers,
    )


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a run that ended meanwhile: nothing to cancel


async def _streamed(request: Request, thread_id: str | None) -> EventStreamResponse:
    runtime = runtime_of(request)
    started = await _start(request, thread_id, streaming=True)
    try:
        release = await runtime.subscriber_place(request, started.run.run_id)
    except BaseException:
        with contextlib.suppress(RunFinishedError, RunNotFoundError):
            await runtime.require_runs().cancel_run(started.run.run_id, "no place to stream it")
        raise
    content_location, location = _paths(request, started)
    headers = [(b"content-location", content_location.encode())]
    if location is not None and started.on_disconnect == "continue":
        headers.append((b"location", location.encode()))
    return _stream(
        request,
        started.run,
        started.modes,
        None,
        headers=headers,
        cancel_on_disconnect=started.on_disconnect == "cancel",
        release=release,
        timeout=None,
    )


async def stream_run(request: Request) -> EventStreamResponse:
    """`POST /threads/{thread_id}/runs/stream`."""
    return await _streamed(request, request.path_params["thread_id"])


async def stateless_stream(request: Request) -> EventStreamResponse:
    """`POST /runs/stream`: a run on no thread of the caller's."""
    return await _streamed(request, None)


async def create_run(request: Request) -> Response:
    """`POST /threads/{thread_id}/runs`: a background run (the `Run`)."""
    started = await _start(request, request.path_params["thread_id"], streaming=False)
    content_location, _ = _paths(request, started)
    return JSONResponse(run_record(started.run), headers={"Content-Location": content_location})


async def _final(request: Request, run: Run) -> dict[str, Any]:
    """The run's final values once it ends (its error as `__error__`)."""
    runs = runtime_of(request).require_runs()
    async for batch in runs.bus.subscribe(run.run_id, max(run.last_sequence, 0)):
        if any(record.terminal for record in batch):
            break
    ended = await runs.get_run(run.run_id) or run
    status = lg_status(ended)
    if status in ("success", "interrupted") and ended.status.value == "COMPLETED":
        output = ended.output
        return output if isinstance(output, dict) else {"output": output}
    error = ended.error or {}
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    name = (details or {}).get("type") or error.get("code") or "RunCancelled"
    message = error.get("error") or f"Run '{run.run_id}' ended {status}"
    return {"__error__": {"error": name, "message": message}}


async def _waited(request: Request, thread_id: str | None) -> Response:
    started = await _start(request, thread_id, streaming=False)
    content_location, _ = _paths(request, started)
    return JSONResponse(
        await _final(request, started.run), headers={"Content-Location": content_location}
    )


async def wait_run(request: Request) -> Response:
    """`POST /threads/{thread_id}/runs/wait`: the run's final values."""
    return await _waited(request, request.path_params["thread_id"])


async def stateless_wait(request: Request) -> Response:
    """`POST /runs/wait`."""
    return await _waited(request, None)


async def _thread_run(request: Request) -> Run:
    thread_id = await owned_thread(request)
    run = await owned_run(request)
    if run.metadata.get("thread_id") != thread_id:
        raise RuntimeHTTPError(f"Run '{run.run_id}' not found", "NOT_FOUND")
    return run


async def get_run(request: Request) -> Response:
    """`GET /threads/{thread_id}/runs/{run_id}`."""
    return JSONResponse(run_record(await _thread_run(request)))


async def list_runs(request: Request) -> Response:
    """`GET /threads/{thread_id}/runs`: newest first."""
    thread_id = await owned_thread(request)
    limit = _query_int(request, "limit", 10, 1, 1000)
    offset = _query_int(request, "offset", 0, 0, 1000)
    runs = await caller_runs(request, thread_id)
    return JSONResponse([run_record(run) for run in runs[offset : offset + limit]])


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and low <= int(raw) <= high):
        raise RuntimeHTTPError(
            f"Query parameter '{name}' must be an integer between {low} and {high}",
            "VALIDATION_ERROR",
        )
    return int(raw)


def _cursor(request: Request) -> LgCursor | None:
    header = request.headers.get("last-event-id")
    if header is None or header in ("", "-1"):
        return None  # everything, from the run's start
    cursor = LgCursor.parse(header)
    if cursor is None:
        raise RuntimeHTTPError(
            "Last-Event-ID must be an id of this stream ('7' or '7.1'), or -1 for all",
            "VALIDATION_ERROR",
        )
    return cursor


async def join_stream(request: Request) -> EventStreamResponse:
    """`GET /threads/{thread_id}/runs/{run_id}/stream`: the run's stream from its start, or
    after `Last-Event-ID`, then live until it ends."""
    run = await _thread_run(request)
    runtime = runtime_of(request)
    recorded = run.metadata.get(LG_METADATA)
    lg = recorded if isinstance(recorded, dict) else {}
    created = [str(mode) for mode in lg.get("stream_mode") or ["values"]]
    asked = [mode for mode in request.query_params.getlist("stream_mode") if mode]
    modes = _modes(asked) if asked else created
    after = _cursor(request)
    # "true" from the Python client, "1" from the JavaScript one
    cancel = request.query_params.get("cancel_on_disconnect", "").lower() in ("true", "1")
    await runtime.require_runs().bus.backend.read(run.run_id, -1, timeout=0)  # 410 if gone
    release = await runtime.subscriber_place(request, run.run_id)
    location = f"/threads/{run.metadata['thread_id']}/runs/{run.run_id}/stream"
    return _stream(
        request,
        run,
        modes,
        after,
        headers=[(b"location", location.encode())],
        cancel_on_disconnect=cancel,
        release=release,
        timeout=float(min(runtime.settings.default_timeout, MAX_SUBSCRIPTION_TIMEOUT)),
    )


async def join_run(request: Request) -> Response:
    """`GET /threads/{thread_id}/runs/{run_id}/join`: its final values once it ends."""
    return JSONResponse(await _final(request, await _thread_run(request)))


async def cancel_run(request: Request) -> Response:
    """`POST /threads/{thread_id}/runs/{run_id}/cancel`: the run stops (its progress kept);
    409 when it already ended."""
    run = await _thread_run(request)
    runs = runtime_of(request).require_runs()
    try:
        cancelled = await runs.cancel_run(run.run_id, "cancelled by the client")
    except RunFinishedError as exc:
        raise RuntimeHTTPError(
            f"Run '{run.run_id}' already finished ({exc.status}); nothing to cancel", "CONFLICT"
        ) from None
    except RunNotFoundError:
        raise RuntimeHTTPError(f"Run '{run.run_id}' not found", "NOT_FOUND") from None
    with contextlib.suppress(RunNotFoundError):
        cancelled = await runs.get_run(run.run_id) or cancelled
    return JSONResponse(run_record(cancelled))

"""AG-UI for agent front ends: `POST /ag-ui` takes AG-UI's `RunAgentInput` and answers a
stream of AG-UI events; `GET /ag-ui/runs/{run_id}` (or `GET /runs/{run_id}/events?format=
ag-ui`) replays a run as AG-UI and follows it, from `Last-Event-ID`.

The agent runs as a background run (visible in `GET /runs/{run_id}`, cancelled by
`DELETE /runs/{run_id}`, owned by its caller); a client that goes away does not stop it,
so a dropped stream resumes with nothing lost or repeated. The AG-UI models come from the
optional `ag-ui` extra, imported on the first request.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pydantic
from starlette.requests import Request

from ..agents import RunOptions
from ..errors import RuntimeHTTPError
from ..runtime import Runtime, runtime_of
from ..wire.sse import EventStreamResponse
from .run_access import MAX_SUBSCRIPTION_TIMEOUT, owned_run, start_run

__all__ = ["replay_run", "run_agent"]

_MAX_PROBLEMS = 20


def _ag_ui() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The AG-UI translation, stream and input modules (they need the `ag-ui` extra)."""
    try:
        from ..wire import ag_ui, ag_ui_input, ag_ui_stream
    except ImportError:
        raise RuntimeHTTPError(
            "expose.ag_ui is enabled but the AG-UI protocol package is not installed: "
            "pip install 'dockrion-runtime[ag-ui]'",
            "AGENT_NOT_READY",
        ) from None
    return ag_ui, ag_ui_stream, ag_ui_input


def _require_runs(runtime: Runtime) -> None:
    if not runtime.settings.async_runs:
        raise RuntimeHTTPError(
            "AG-UI runs the agent as a background run: set streaming.async_runs: true",
            "AGENT_NOT_READY",
        )


async def run_agent(request: Request) -> EventStreamResponse:
    """`POST /ag-ui`: run the agent on a `RunAgentInput` and stream the run as AG-UI."""
    runtime = runtime_of(request)
    _require_runs(runtime)
    translation, stream, inputs = _ag_ui()
    settings = runtime.settings
    agent = runtime.require_agent()
    runtime.require_runs()
    body = await runtime.body.read(request, check=False)
    try:
        run_input = inputs.RunAgentInput.model_validate(body)
    except pydantic.ValidationError as exc:
        problems = [
            {"loc": ["body", *error["loc"]], "msg": error["msg"]}
            for error in exc.errors()[:_MAX_PROBLEMS]
        ]
        raise RuntimeHTTPError(
            "Body is not an AG-UI RunAgentInput", "VALIDATION_ERROR", problems
        ) from None
    resuming, value = inputs.resume_value(run_input)
    payload: Any = None
    update: dict[str, Any] | None = None  # state keys set as an interrupted graph resumes
    options: RunOptions | None = None
    if settings.framework == "langgraph":
        # a graph on a checkpointer, its own or the runtime's, holds the earlier turns
        keeps_threads = agent.thread_refusal() is None
        try:
            if resuming:
                update = inputs.graph_tools(run_input, agent.input_keys, resuming=True)
            else:
                payload = inputs.graph_input(
                    run_input, keeps_threads=keeps_threads, state_keys=agent.input_keys
                )
        except inputs.InputRefused as exc:
            problem = {"loc": ["body", exc.field], "msg": str(exc)}
            raise RuntimeHTTPError(str(exc), "VALIDATION_ERROR", [problem]) from None
        if not resuming:
            _check_input(runtime, payload)
        if keeps_threads or resuming:
            claimed = await runtime.threads.claim(request, agent, run_input.thread_id)
            options = RunOptions(
                thread_id=claimed.thread_id,
                resume=value,
                resuming=resuming,
                update=update,
                turn=claimed.turn,
            )
    else:
        if resuming:
            raise RuntimeHTTPError(
                "This agent never stops at an interrupt, so there is nothing to resume: "
                "send no 'resume' entries (and no forwardedProps.command.resume)",
                "VALIDATION_ERROR",
            )
        payload = inputs.handler_input(run_input, settings.ag_ui.message_field)
        _check_input(runtime, payload)
        options = await runtime.threads.claim(request, agent, run_input.thread_id)
    ids = {"thread_id": run_input.thread_id, "run_id": run_input.run_id}
    run = await start_run(request, payload, None, options, {"ag_ui": ids})
    return await _stream(request, translation, stream, run.run_id, ids, after=None, timeout=None)


def _check_input(runtime: Runtime, payload: Any) -> None:
    problems = runtime.body.checker.problems(payload)
    if problems:
        raise RuntimeHTTPError(
            "Input validation failed (the agent's input made from the RunAgentInput)",
            "VALIDATION_ERROR",
            problems,
        )


async def replay_run(request: Request) -> EventStreamResponse:
    """`GET /ag-ui/runs/{run_id}`: the run as AG-UI from its start, or after the client's
    `Last-Event-ID` (an id of this stream) or from `?from_sequence=` (a stored event's
    sequence, inclusive); then live until the run ends or `?timeout=` seconds pass."""
    runtime = runtime_of(request)
    _require_runs(runtime)
    translation, stream, _ = _ag_ui()
    run = await owned_run(request)
    after = _cursor(stream, request)
    runs = runtime.require_runs()
    # Refuses (410) a run whose log no longer starts at its first event: the AG-UI events
    # are rebuilt from the start.
    await runs.bus.backend.read(run.run_id, -1, timeout=0)
    stored = run.metadata.get("ag_ui")
    ids = stored if isinstance(stored, dict) else {}
    ids = {
        "thread_id": str(ids.get("thread_id") or run.metadata.get("thread_id") or run.run_id),
        "run_id": str(ids.get("run_id") or run.run_id),
    }
    timeout = _timeout(request, runtime.settings.default_timeout)
    return await _stream(
        request, translation, stream, run.run_id, ids, after=after, timeout=timeout
    )


async def _stream(
    request: Request,
    translation: ModuleType,
    stream: ModuleType,
    run_id: str,
    ids: dict[str, str],
    *,
    after: Any,
    timeout: float | None,
) -> EventStreamResponse:
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    translator = translation.AgUiTranslator(
        thread_id=ids["thread_id"],
        run_id=ids["run_id"],
        dockrion_run_id=run_id,
        framework=runtime.settings.framework,
    )
    release = await runtime.subscriber_place(request, run_id)
    batches = runs.bus.subscribe(run_id, 0, heartbeat=runtime.settings.heartbeat_interval)
    return runtime.event_stream(
        stream.ag_ui_batches(batches, translator, after),
        run_id,
        on_close=release,
        timeout=timeout,
        heartbeat_events=False,  # AG-UI clients read every data line as an AG-UI event
        extra_headers=[(b"content-location", f"/ag-ui/runs/{run_id}".encode())],
    )


def _cursor(stream: ModuleType, request: Request) -> Any:
    """What the client has: `Last-Event-ID` (an id of this stream, `7` or `7.1`) wins over
    `?from_sequence=N` (send from stored event N on); None for everything."""
    header = request.headers.get("last-event-id")
    if header is not None:
        cursor = stream.AgUiCursor.parse(header)
        if cursor is None:
            raise RuntimeHTTPError(
                "Last-Event-ID must be an id of the AG-UI stream: a sequence number, or a "
                "sequence number, a dot and an index ('7' or '7.1')",
                "VALIDATION_ERROR",
            )
        return cursor
    raw = request.query_params.get("from_sequence")
    if raw is None:
        return None
    cursor = stream.AgUiCursor.parse(raw)
    if cursor is None or cursor.index is not None:
        raise RuntimeHTTPError(
            f"Query parameter 'from_sequence' must be a non-negative integer, got {raw[:40]!r}",
            "VALIDATION_ERROR",
        )
    return stream.AgUiCursor(cursor.sequence - 1) if cursor.sequence > 0 else None


def _timeout(request: Request, default: int) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return float(default)
    longest = MAX_SUBSCRIPTION_TIMEOUT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= longest):
        raise RuntimeHTTPError(
            f"Query parameter 'timeout' must be an integer between 1 and {longest}, "
            f"got {raw[:40]!r}",
            "VALIDATION_ERROR",
        )
    return float(raw)

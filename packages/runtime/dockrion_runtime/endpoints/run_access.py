"""What the run endpoints of every wire format share (`/runs`, their WebSocket view and
AG-UI): the caller's own runs (`owned_run`, 404 for anyone else's), starting a background
run (`start_run`), and reading a cursor or a bounded number from a query (`resume_from`,
`int_query`)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request

from dockrion_events import Run, validate_run_id

from ..agents import RunOptions
from ..auth import principal_of
from ..auth.concurrency import holds_a_slot
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of

__all__ = [
    "MAX_SEQUENCE",
    "MAX_SUBSCRIPTION_TIMEOUT",
    "int_query",
    "owned_run",
    "resume_from",
    "start_run",
]

# A sequence number, as a client may send it back: a non-negative integer below 10**18.
_MAX_SEQUENCE_DIGITS = 18
MAX_SEQUENCE = 10**_MAX_SEQUENCE_DIGITS - 1
_SEQUENCE = re.compile(rf"[0-9]{{1,{_MAX_SEQUENCE_DIGITS}}}")
# The longest `?timeout=` (seconds) a subscription may ask for: the run goes on after it.
MAX_SUBSCRIPTION_TIMEOUT = 3600


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


async def owned_run(request: Request) -> Run:
    """The run named in the path, if it exists and belongs to the caller (else 404)."""
    runs = runtime_of(request).require_runs()
    run_id = request.path_params["run_id"]
    validate_run_id(run_id)
    run = await runs.get_run(run_id)
    if run is None or not may_see(request, run):
        raise RuntimeHTTPError(f"Run '{run_id}' not found", "NOT_FOUND")
    return run


def may_see(request: Request, run: Run) -> bool:
    """A run is its owner's; with roles configured, `read_logs` also lets a caller read
    (never cancel or resume) other callers' runs."""
    principal = principal_of(request)
    if run.owner == principal.id:
        return True
    reader = runtime_of(request).access.enforced and "read_logs" in principal.permissions
    return reader and request.method == "GET"


async def start_run(
    request: Request,
    payload: Any,
    requested: str | None,
    options: RunOptions | None,
    metadata: dict[str, Any] | None = None,
    trace_parent: str | None = None,
) -> Run:
    """Create a run owned by the caller (its thread id and `metadata` recorded) and start
    its agent in the background: here, or on a worker when runs go through the queue. When
    runs are traced, the run's trace ids are recorded too (`metadata.trace`): in the trace
    of `trace_parent` (the run it resumes), else of the caller's `traceparent` header."""
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    runs = runtime.require_runs()
    metadata = dict(metadata or {})
    tracer = runtime.telemetry.tracer
    if tracer is not None:
        parent = trace_parent or request.headers.get("traceparent")
        metadata["trace"] = tracer.origin(parent).metadata()
    if options is not None and options.thread_id is not None:
        metadata["thread_id"] = options.thread_id
    principal = principal_of(request)
    try:
        release = await runtime.slots.take(principal, "runs")  # before anything is created
    except BaseException:
        if options is not None and options.turn is not None:
            await options.turn.end()  # no run: its thread's turn goes to the next
        raise
    via = "ag-ui" if "ag_ui" in metadata else "mcp" if "mcp" in metadata else "background"
    records = runtime.thread_services.records  # what its thread keeps of it
    if runtime.queue is not None:  # a worker of any instance runs it
        try:
            run = await runs.create_run(requested, owner=principal.id, metadata=metadata)
            # its thread's record follows the run's state when read
            options = await records.open(options, run.run_id, via, payload, run.created_at)
            held = release if holds_a_slot(release) else None
            await runtime.queue.submit(run.run_id, payload, options, principal.auth_context, held)
        except BaseException:
            release()
            if options is not None and options.turn is not None:
                await options.turn.end()
            raise
        return run
    try:
        run = await runs.create_run(requested, owner=principal.id, metadata=metadata)
        options = await records.open(options, run.run_id, via, payload, run.created_at)
        context = runs.get_context(run.run_id)
        assert context is not None
        runtime.bind(context, request)
        context.thread_id = options.thread_id if options else None
        supervisor = runtime.supervisor
        task = supervisor.spawn(supervisor.execute_run(runs, agent, payload, context, options))
    except BaseException:
        release()
        if options is not None and options.turn is not None:
            await options.turn.end()  # no run: its thread's turn goes to the next
        raise
    task.add_done_callback(lambda _: release())
    context.on_cancel(lambda: _cancel(task))
    return run


def resume_from(request: Request) -> int:
    """The first sequence to send: `Last-Event-ID: N` means "I have N" (resume after it) and
    wins over `?from_sequence=N`, which is inclusive."""
    start = int_query(request, "from_sequence", 0, 0, None)
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


def int_query(request: Request, name: str, default: int, low: int, high: int | None) -> int:
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

"""The Starlette application built from a Dockfile: `create_app(spec_or_path)`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from dockrion_events import (
    BackendError,
    EventBackend,
    EventBus,
    EventsExpiredError,
    EventsFilter,
    InMemoryBackend,
    InvalidRunIdError,
    Run,
    RunCancelledError,
    RunExistsError,
    RunFinishedError,
    RunManager,
    StreamClosedError,
    StreamContext,
    validate_run_id,
)
from dockrion_schema import DockSpec, load_dockspec, resolve_environment

from ._version import __version__
from .agent import Agent, AgentLoadError, InvalidOutputError, import_target, load_agent
from .auth import ANONYMOUS, Authenticator, AuthFailed, Principal, build_auth
from .errors import RuntimeHTTPError, error_body
from .logs import RequestIdMiddleware, current_request_id
from .metrics import MetricsMiddleware, RuntimeMetrics
from .openapi import OpenApiEndpoints, build_openapi
from .payload import check_value, read_payload
from .sse import EventStreamResponse

__all__ = ["create_app"]

log = logging.getLogger("dockrion.runtime")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WORKER_THREADS = 512
# A Pattern A log has one reader, which drops what it has read: this only bounds how far
# an agent may run ahead of a slow client before that client is cut off.
PATTERN_A_MAX_BACKLOG = 200_000


class Runtime:
    """Everything built once from the Dockfile at start-up, and the endpoints using it."""

    def __init__(self, spec: DockSpec, base_dir: Path, auth: Authenticator) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.auth = auth
        self.agent: Agent | None = None
        self.load_error: str | None = None
        streaming = spec.streaming
        events = streaming.events if streaming else None
        self.events_filter = EventsFilter(events.allowed if events else None)
        self.heartbeat_interval = float(events.heartbeat_interval if events else 15)
        self.max_run_duration = float(events.max_run_duration if events else 3600)
        arguments = spec.arguments
        self.timeout_sec = float(arguments.get("timeout_sec", 30) or 0)
        self.max_body_bytes = int(arguments.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self.version = (spec.metadata.version if spec.metadata else None) or "1.0.0"
        self._tasks: set[asyncio.Task[None]] = set()
        connection = streaming.connection if streaming else None
        self.default_timeout = float(connection.default_timeout if connection else 300)
        self.max_subscribers = connection.max_subscribers_per_run if connection else 100
        self.async_runs = streaming is None or streaming.async_runs
        self.allow_client_ids = streaming is None or streaming.allow_client_ids
        self.runs: RunManager | None = None
        self._subscribers: dict[str, int] = {}
        self.metrics = RuntimeMetrics(self.name, self.version)
        self.shutting_down = False
        # Each running sync agent holds a worker thread for its whole run, so the pool is
        # sized for concurrent runs, not for CPU work (threads start lazily).
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(arguments.get("worker_threads", DEFAULT_WORKER_THREADS)),
            thread_name_prefix="dockrion-agent",
        )

    def stream_response(
        self,
        batches: AsyncIterator[list[Any]],
        run_id: str,
        *,
        on_disconnect: Any = None,
        on_close: Any = None,
        timeout: float | None = None,
    ) -> EventStreamResponse:
        """An SSE response counted in the metrics (open streams, events sent)."""
        agent = self.name
        self.metrics.streams.labels(agent).inc()

        def closed() -> None:
            self.metrics.streams.labels(agent).dec()
            if on_close is not None:
                on_close()

        return EventStreamResponse(
            batches,
            run_id=run_id,
            heartbeat_events=self.events_filter.allows_heartbeats,
            on_disconnect=on_disconnect,
            on_close=closed,
            on_sent=self.metrics.events.labels(agent).inc,
            timeout=timeout,
        )

    @property
    def name(self) -> str:
        return self.spec.agent.name

    @property
    def framework(self) -> str:
        return self.spec.agent.framework or "custom"

    def build_backend(self) -> EventBackend:
        streaming = self.spec.streaming
        if streaming is None or streaming.backend == "memory":
            return InMemoryBackend()
        redis = streaming.redis
        assert redis is not None  # the schema fills it in for backend: redis
        if "${" in redis.url:
            raise AgentLoadError(
                f"streaming.redis.url is {redis.url!r}: set REDIS_URL (or write the URL) so "
                "the runtime knows where Redis is"
            )
        try:
            from dockrion_events.backends.redis import RedisBackend
        except ImportError:
            raise AgentLoadError(
                "streaming.backend redis needs the redis extra: "
                "pip install 'dockrion-runtime[redis]'"
            ) from None
        return RedisBackend(
            redis.url,
            stream_ttl_seconds=redis.stream_ttl_seconds,
            max_events_per_run=redis.max_events_per_run,
            connection_pool_size=redis.connection_pool_size,
            key_prefix=redis.key_prefix,
        )

    def build_run_manager(self, backend: EventBackend) -> RunManager:
        streaming = self.spec.streaming
        generator = None
        id_generator = streaming.id_generator if streaming else None
        if id_generator is not None and id_generator.type == "custom" and id_generator.handler:
            loaded = import_target(id_generator.handler, self.base_dir)
            if not callable(loaded):
                raise AgentLoadError(
                    f"streaming.id_generator.handler {id_generator.handler!r} is not callable"
                )
            generator = loaded
        lease = streaming.redis.lease_seconds if streaming and streaming.redis else 10
        return RunManager(
            EventBus(backend),
            allow_client_ids=self.allow_client_ids,
            agent_name=self.name,
            framework=self.framework,
            id_generator=generator,
            events_filter=self.events_filter,
            lease_seconds=float(lease),
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            if self.async_runs:
                backend = self.build_backend()
                self.runs = self.build_run_manager(backend)
                try:
                    await backend.check()
                except BackendError as exc:
                    # Not ready until the backend answers (D17); /ready keeps asking.
                    self.load_error = str(exc)
                    log.error("events backend not reachable: %s", exc)
                self.runs.start_reaper()
            self.agent = load_agent(
                self.spec, self.base_dir, self.executor, events_filter=self.events_filter
            )
        except AgentLoadError as exc:
            self.load_error = str(exc)
            log.error("agent not loaded: %s", exc)
        yield
        self.shutting_down = True
        for task in list(self._tasks):
            task.cancel()
        if self.runs is not None:
            await self.runs.close()
            await self.runs.bus.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- public endpoints ----------------------------------------------------------------

    async def welcome(self, request: Request) -> Response:
        rows = "".join(
            f"<li><code>{method} {path}</code></li>" for method, path in self.route_list()
        )
        description = self.spec.agent.description or "Dockrion Agent"
        return HTMLResponse(
            f"<!doctype html><title>{self.name}</title><h1>{self.name}</h1>"
            f"<p>{description}</p><ul>{rows}</ul>"
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "service": f"runtime:{self.name}",
                "version": self.version,
                "timestamp": datetime.now(UTC).isoformat(),
                "agent": self.name,
                "framework": self.framework,
            }
        )

    async def ready(self, request: Request) -> Response:
        reason = None
        if self.agent is None:
            reason = self.load_error or "agent is still loading"
        elif self.runs is not None and not await self.runs.bus.backend.ping():
            # Asked every time: ready again as soon as the backend answers (D17).
            reason = f"the {self.runs.bus.backend.name} events backend does not answer"
        if reason is not None:
            return JSONResponse(
                {
                    "success": False,
                    "status": "not_ready",
                    "error": reason,
                    "code": "AGENT_NOT_READY",
                },
                status_code=503,
            )
        return JSONResponse({"success": True, "status": "ready", "agent": self.name})

    async def info(self, request: Request) -> Response:
        agent = self.spec.agent
        metadata = self.spec.metadata
        return JSONResponse(
            {
                "success": True,
                "agent": {
                    "name": agent.name,
                    "description": agent.description or "Dockrion Agent",
                    "framework": self.framework,
                    "mode": agent.mode,
                    "target": agent.target,
                    agent.mode: agent.target,
                },
                "auth_enabled": bool(self.spec.auth and self.spec.auth.mode != "none"),
                "version": self.version,
                "metadata": metadata.model_dump(mode="json") if metadata else None,
                "runtime_version": __version__,
            }
        )

    async def schema(self, request: Request) -> Response:
        io = self.spec.io_schema
        return JSONResponse(
            {
                "success": True,
                "agent": self.name,
                "input_schema": io.input.model_dump(mode="json") if io.input else {},
                "output_schema": io.output.model_dump(mode="json") if io.output else {},
            }
        )

    # --- invocation ------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal:
        """Runs before anything else of a protected endpoint (body validation included)."""
        principal = await self.auth.authenticate(request)
        request.state.principal = principal
        return principal

    def _require_agent(self) -> Agent:
        if self.agent is None:
            raise RuntimeHTTPError(
                503, f"Agent not ready: {self.load_error or 'still loading'}", "AGENT_NOT_READY"
            )
        return self.agent

    def _check_output(self, output: Any) -> list[dict[str, Any]]:
        try:
            json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise RuntimeHTTPError(
                500, f"Agent output is not JSON-serialisable: {exc}", "INVALID_OUTPUT"
            ) from None
        io = self.spec.io_schema
        if io.strict and io.output is not None:
            return check_value(output, io.output)
        return []

    async def invoke(self, request: Request) -> Response:
        await self.authenticate(request)
        agent = self._require_agent()
        payload = await read_payload(request, self.spec.io_schema.input, self.max_body_bytes)
        started = time.perf_counter()
        context = await self._private_context(keep=16)  # events of /invoke are not kept
        try:
            async with asyncio.timeout(self.timeout_sec if self.timeout_sec > 0 else None):
                output = await agent.invoke(payload, context)
        except TimeoutError:
            context.cancel("timeout")  # a sync agent stops at its next emit (D22)
            raise RuntimeHTTPError(
                504, f"Agent invocation timed out after {self.timeout_sec:g}s", "RUN_TIMEOUT"
            ) from None
        except Exception as exc:
            log.exception("agent failed on /invoke")
            raise RuntimeHTTPError(
                500,
                f"Handler invocation failed: {type(exc).__name__}: {exc}",
                "AGENT_EXECUTION_ERROR",
            ) from None
        metadata: dict[str, Any] = {
            "agent": self.name,
            "framework": self.framework,
            "latency_seconds": round(time.perf_counter() - started, 3),
        }
        problems = self._check_output(output)
        if problems:
            log.warning("agent output does not match io_schema.output: %s", problems)
            metadata["output_schema_errors"] = problems
        return JSONResponse({"success": True, "output": output, "metadata": metadata})

    async def invoke_stream(self, request: Request) -> EventStreamResponse:
        await self.authenticate(request)
        agent = self._require_agent()
        payload = await read_payload(request, self.spec.io_schema.input, self.max_body_bytes)
        context = await self._private_context(keep=PATTERN_A_MAX_BACKLOG, discard_consumed=True)
        run_id = context.run_id
        bus = context_bus(context)
        await context.emit_started()
        task = asyncio.create_task(self._execute(agent, payload, context))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def client_gone() -> None:
            task.cancel()  # _execute then ends the log with `cancelled` and stops the agent

        return self.stream_response(
            bus.subscribe(run_id, heartbeat=self.heartbeat_interval),
            run_id,
            on_disconnect=client_gone,
        )

    async def _private_context(self, keep: int, discard_consumed: bool = False) -> StreamContext:
        """A one-run log of our own (Pattern A and /invoke): no shared backend involved."""
        run_id = str(uuid.uuid4())
        backend = InMemoryBackend(max_events_per_run=keep, discard_consumed=discard_consumed)
        await backend.create_run(Run(run_id=run_id, agent_name=self.name, framework=self.framework))
        await backend.start_run(run_id)
        return StreamContext(
            run_id,
            EventBus(backend),
            agent_name=self.name,
            framework=self.framework,
            events_filter=self.events_filter,
        )

    async def drain(self, grace: float) -> None:
        """Shutdown: let running agents finish within `grace` s, then cancel the rest with
        reason `shutdown` so every open stream gets its terminal event before closing."""
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            log.info("waiting up to %gs for %d running agent(s)", grace, len(pending))
            _, pending_set = await asyncio.wait(pending, timeout=grace)
            self.shutting_down = True
            for task in pending_set:
                task.cancel()
            if pending_set:
                await asyncio.wait(pending_set, timeout=5)

    async def _execute(
        self,
        agent: Agent,
        payload: Any,
        context: StreamContext,
        cancel_reason: str = "client disconnected",
    ) -> None:
        """Run the agent for one run and end its log with exactly one terminal event."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.max_run_duration):
                output = await agent.invoke(payload, context)
            problems = self._check_output(output)
            metadata: dict[str, Any] = {"agent": self.name, "framework": self.framework}
            if problems:
                metadata["output_schema_errors"] = problems
            await context.emit_complete(output, round(time.perf_counter() - started, 3), metadata)
        except (RunCancelledError, StreamClosedError, RunFinishedError):
            return  # the run already ended (cancelled): nothing more to say
        except TimeoutError:
            context_error = f"Run exceeded max_run_duration of {self.max_run_duration:g}s"
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(context_error, "RUN_TIMEOUT")
            context.cancel("timeout")
        except asyncio.CancelledError:
            reason = "shutdown" if self.shutting_down else cancel_reason
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_cancelled(reason)
            context.cancel(reason)
            raise
        except RuntimeHTTPError as exc:
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(exc.message, exc.code)
        except InvalidOutputError as exc:
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(str(exc), exc.code)
        except Exception as exc:
            log.exception("agent failed on a stream")
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(
                    f"Handler invocation failed: {type(exc).__name__}: {exc}",
                    "AGENT_EXECUTION_ERROR",
                )

    # --- Pattern B: background runs ------------------------------------------------------

    def _require_runs(self) -> RunManager:
        if self.runs is None:
            raise RuntimeHTTPError(
                503, f"Runs not ready: {self.load_error or 'starting'}", "AGENT_NOT_READY"
            )
        return self.runs

    async def _owned_run(self, request: Request) -> Run:
        """The run named in the path, if it exists and belongs to the caller (else 404)."""
        await self.authenticate(request)
        runs = self._require_runs()
        run_id = request.path_params["run_id"]
        try:
            validate_run_id(run_id)
        except InvalidRunIdError as exc:
            raise RuntimeHTTPError(400, exc.message, "VALIDATION_ERROR") from None
        run = await runs.get_run(run_id)
        if run is None or run.owner != self.principal(request):
            raise RuntimeHTTPError(404, f"Run '{run_id}' not found", "NOT_FOUND")
        return run

    def principal(self, request: Request) -> str | None:
        """Who is calling: runs belong to the principal that created them."""
        principal: Principal = getattr(request.state, "principal", ANONYMOUS)
        return principal.id

    async def create_run(self, request: Request) -> Response:
        await self.authenticate(request)
        agent = self._require_agent()
        runs = self._require_runs()
        payload = await read_payload(request, self.spec.io_schema.input, self.max_body_bytes)
        requested = request.query_params.get("run_id")
        try:
            run = await runs.create_run(requested, owner=self.principal(request))
        except InvalidRunIdError as exc:
            raise RuntimeHTTPError(400, exc.message, "VALIDATION_ERROR") from None
        except RunExistsError as exc:
            raise RuntimeHTTPError(409, exc.message, "CONFLICT") from None
        context = runs.get_context(run.run_id)
        assert context is not None
        task = asyncio.create_task(self._execute_run(runs, agent, payload, context))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        context.on_cancel(functools.partial(_cancel_task, task))
        return JSONResponse(
            {
                "run_id": run.run_id,
                "status": run.status.value,
                "events_url": f"/runs/{run.run_id}/events",
                "created_at": run.created_at.isoformat(),
            },
            status_code=202,
        )

    async def _execute_run(
        self, runs: RunManager, agent: Agent, payload: Any, context: StreamContext
    ) -> None:
        try:
            await runs.start_run(context.run_id)
        except RunFinishedError:
            return  # cancelled before it started
        try:
            await self._execute(agent, payload, context, cancel_reason="cancelled")
        finally:
            runs.forget(context.run_id)

    async def get_run(self, request: Request) -> Response:
        run = await self._owned_run(request)
        return JSONResponse(run.to_response())

    async def cancel_run(self, request: Request) -> Response:
        run = await self._owned_run(request)
        reason = request.query_params.get("reason") or "User requested cancellation"
        try:
            cancelled = await self._require_runs().cancel_run(run.run_id, reason)
        except RunFinishedError as exc:
            raise RuntimeHTTPError(
                400,
                f"Run '{run.run_id}' already finished ({exc.status}); nothing to cancel",
                "VALIDATION_ERROR",
            ) from None
        return JSONResponse({"run_id": cancelled.run_id, "status": cancelled.status.value})

    async def run_events(self, request: Request) -> Response | EventStreamResponse:
        run = await self._owned_run(request)
        runs = self._require_runs()
        start = _int_query(request, "from_sequence", 0, 0, None)
        timeout = _int_query(request, "timeout", int(self.default_timeout), 1, 3600)
        last_event_id = request.headers.get("last-event-id")
        if last_event_id is not None and last_event_id.strip():
            if not last_event_id.strip().isdigit():
                raise RuntimeHTTPError(
                    400,
                    "Last-Event-ID must be the sequence number of an event",
                    "VALIDATION_ERROR",
                )
            start = int(last_event_id) + 1  # "I have N": resume after it (D2)
        try:
            await runs.bus.backend.read(run.run_id, start - 1, timeout=0)
        except EventsExpiredError as exc:
            return JSONResponse(
                {**error_body(exc.message, exc.code), "first_available": exc.first_available},
                status_code=410,
            )
        count = self._subscribers.get(run.run_id, 0)
        if count >= self.max_subscribers:
            raise RuntimeHTTPError(
                429,
                f"Run '{run.run_id}' already has {count} subscribers (the limit is "
                f"{self.max_subscribers}); try again later",
                "TOO_MANY_SUBSCRIBERS",
            )
        self._subscribers[run.run_id] = count + 1

        def release() -> None:
            left = self._subscribers.get(run.run_id, 1) - 1
            if left > 0:
                self._subscribers[run.run_id] = left
            else:
                self._subscribers.pop(run.run_id, None)

        return self.stream_response(
            runs.bus.subscribe(run.run_id, start, heartbeat=self.heartbeat_interval),
            run.run_id,
            on_close=release,
            timeout=float(timeout),
        )

    def route_list(self) -> list[tuple[str, str]]:
        routes = [
            ("GET", "/health"),
            ("GET", "/ready"),
            ("GET", "/info"),
            ("GET", "/schema"),
            ("GET", "/metrics"),
        ]
        if self.spec.expose.rest:
            routes.append(("POST", "/invoke"))
        if self.spec.expose.streaming == "sse":
            routes.append(("POST", "/invoke/stream"))
        if self.async_runs:
            routes += [
                ("POST", "/runs"),
                ("GET", "/runs/{run_id}"),
                ("GET", "/runs/{run_id}/events"),
                ("DELETE", "/runs/{run_id}"),
            ]
        return routes


def context_bus(context: StreamContext) -> EventBus:
    bus = context.sink
    assert isinstance(bus, EventBus)
    return bus


def _cancel_task(task: asyncio.Task[None]) -> None:
    task.cancel()


def _int_query(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RuntimeHTTPError(
            400,
            f"Query parameter '{name}' must be an integer {bounds}, got {raw!r}",
            "VALIDATION_ERROR",
        )
    return value


async def _runtime_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RuntimeHTTPError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _backend_error(request: Request, exc: Exception) -> Response:
    log.error("events backend error on %s %s: %s", request.method, request.url.path, exc)
    body = error_body(f"Events backend unavailable: {exc}", "BACKEND_UNAVAILABLE")
    return JSONResponse(body, status_code=503)


async def _auth_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthFailed)
    return JSONResponse(exc.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The log has the details; the caller gets the request id to quote, never a traceback.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    request_id = current_request_id()
    body = error_body(f"Internal server error (request id {request_id})", "INTERNAL_ERROR")
    body["request_id"] = request_id
    return JSONResponse(body, status_code=500)


def _dispatch(handlers: dict[str, Any]) -> Any:
    """One endpoint for a path served by several methods (GET and DELETE /runs/{id})."""
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def endpoint(request: Request) -> Any:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def _warn_unenforced(spec: DockSpec) -> None:
    """D15: say once, at start-up, what the Dockfile asks for that this release ignores."""
    unenforced: list[str] = []
    if spec.policies is not None:
        unenforced.append("policies")
    if spec.auth is not None and spec.auth.roles:
        unenforced.append("auth.roles")
    if spec.auth is not None and spec.auth.rate_limits:
        unenforced.append("auth.rate_limits")
    if spec.observability is not None and spec.observability.langfuse:
        unenforced.append("observability.langfuse")
    if spec.expose.streaming == "websocket":
        unenforced.append("expose.streaming: websocket (no WebSocket endpoint; SSE is off)")
    for feature in unenforced:
        log.warning("%s is configured but not enforced by this runtime version", feature)


def create_app(
    spec_or_path: DockSpec | str | os.PathLike[str],
    *,
    env_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """A Starlette app serving the Dockfile's agent. A path loads the Dockfile (env files
    beside it included) and resolves the agent module relative to its folder. Raises
    `AuthConfigError` when the auth section cannot work (for example a missing key)."""
    if isinstance(spec_or_path, DockSpec):
        spec, base_dir = spec_or_path, Path.cwd()
    else:
        path = Path(spec_or_path)
        spec = load_dockspec(path, env_file=env_file, environ=environ)
        base_dir = path.parent
    # Keys may sit in the env files beside the Dockfile too; the shell still wins.
    auth = build_auth(spec.auth, resolve_environment(base_dir, env_file, environ))
    _warn_unenforced(spec)
    runtime = Runtime(spec, base_dir, auth)
    endpoints: dict[tuple[str, str], Any] = {
        ("GET", "/health"): runtime.health,
        ("GET", "/ready"): runtime.ready,
        ("GET", "/info"): runtime.info,
        ("GET", "/schema"): runtime.schema,
        ("GET", "/metrics"): runtime.metrics.endpoint,
        ("POST", "/invoke"): runtime.invoke,
        ("POST", "/invoke/stream"): runtime.invoke_stream,
        ("POST", "/runs"): runtime.create_run,
        ("GET", "/runs/{run_id}"): runtime.get_run,
        ("GET", "/runs/{run_id}/events"): runtime.run_events,
        ("DELETE", "/runs/{run_id}"): runtime.cancel_run,
    }
    # One Route per path, with every method registered for it.
    by_path: dict[str, list[str]] = {}
    for method, route_path in runtime.route_list():
        by_path.setdefault(route_path, []).append(method)
    docs = OpenApiEndpoints(
        build_openapi(spec, runtime.route_list(), runtime.version), spec.agent.name
    )
    routes: list[BaseRoute] = [
        Route("/", runtime.welcome, methods=["GET"]),
        Route("/openapi.json", docs.openapi, methods=["GET"]),
        Route("/docs", docs.docs, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets"),
    ]
    for route_path, methods in by_path.items():
        handlers = {method: endpoints[(method, route_path)] for method in methods}
        routes.append(Route(route_path, _dispatch(handlers), methods=methods, name=route_path))
    cors = spec.expose.cors or {}
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=cors.get("origins", ["*"]),
            allow_methods=cors.get("methods", ["*"]),
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=["X-Request-ID"],
        ),
        Middleware(
            MetricsMiddleware,
            metrics=runtime.metrics,
            routes=[route for route in routes if isinstance(route, Route)],
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=runtime.lifespan,
        exception_handlers={
            RuntimeHTTPError: _runtime_error,
            AuthFailed: _auth_failed,
            BackendError: _backend_error,
            Exception: _unexpected_error,
        },
    )
    app.state.runtime = runtime
    return app

"""The Starlette application built from a Dockfile: `create_app(spec_or_path)`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from dockrion_events import (
    EventBus,
    EventsFilter,
    InMemoryBackend,
    Run,
    RunCancelledError,
    RunFinishedError,
    StreamClosedError,
    StreamContext,
)
from dockrion_schema import DockSpec, load_dockspec

from ._version import __version__
from .agent import Agent, AgentLoadError, load_agent
from .errors import RuntimeHTTPError, error_body
from .payload import check_value, read_payload
from .sse import EventStreamResponse

__all__ = ["create_app"]

log = logging.getLogger("dockrion.runtime")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A Pattern A log has one reader, which drops what it has read: this only bounds how far
# an agent may run ahead of a slow client before that client is cut off.
PATTERN_A_MAX_BACKLOG = 200_000


class Runtime:
    """Everything built once from the Dockfile at start-up, and the endpoints using it."""

    def __init__(self, spec: DockSpec, base_dir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir
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

    @property
    def name(self) -> str:
        return self.spec.agent.name

    @property
    def framework(self) -> str:
        return self.spec.agent.framework or "custom"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            self.agent = load_agent(self.spec, self.base_dir)
        except AgentLoadError as exc:
            self.load_error = str(exc)
            log.error("agent not loaded: %s", exc)
        yield
        for task in list(self._tasks):
            task.cancel()

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
        if self.agent is None:
            reason = self.load_error or "agent is still loading"
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
        agent = self._require_agent()
        payload = await read_payload(request, self.spec.io_schema.input, self.max_body_bytes)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_sec if self.timeout_sec > 0 else None):
                output = await agent.invoke(payload, None)
        except TimeoutError:
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
        agent = self._require_agent()
        payload = await read_payload(request, self.spec.io_schema.input, self.max_body_bytes)
        run_id = str(uuid.uuid4())
        backend = InMemoryBackend(max_events_per_run=PATTERN_A_MAX_BACKLOG, discard_consumed=True)
        await backend.create_run(Run(run_id=run_id, agent_name=self.name, framework=self.framework))
        bus = EventBus(backend)
        context = StreamContext(
            run_id,
            bus,
            agent_name=self.name,
            framework=self.framework,
            events_filter=self.events_filter,
        )
        await backend.start_run(run_id)
        await context.emit_started()
        task = asyncio.create_task(self._execute(agent, payload, context))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def client_gone() -> None:
            context.cancel("client disconnected")
            task.cancel()

        return EventStreamResponse(
            bus.subscribe(run_id, heartbeat=self.heartbeat_interval),
            run_id=run_id,
            heartbeat_events=self.events_filter.allows_heartbeats,
            on_disconnect=client_gone,
        )

    async def _execute(self, agent: Agent, payload: Any, context: StreamContext) -> None:
        """Run the agent for one stream and end its log with exactly one terminal event."""
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
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_cancelled("client disconnected")
            raise
        except RuntimeHTTPError as exc:
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(exc.message, exc.code)
        except Exception as exc:
            log.exception("agent failed on a stream")
            with contextlib.suppress(StreamClosedError, RunFinishedError):
                await context.emit_error(
                    f"Handler invocation failed: {type(exc).__name__}: {exc}",
                    "AGENT_EXECUTION_ERROR",
                )

    def route_list(self) -> list[tuple[str, str]]:
        routes = [("GET", "/health"), ("GET", "/ready"), ("GET", "/info"), ("GET", "/schema")]
        if self.spec.expose.rest:
            routes.append(("POST", "/invoke"))
        if self.spec.expose.streaming == "sse":
            routes.append(("POST", "/invoke/stream"))
        return routes


async def _runtime_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RuntimeHTTPError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("Internal server error", "INTERNAL_ERROR"), status_code=500)


def create_app(
    spec_or_path: DockSpec | str | os.PathLike[str], *, env_file: str | None = None
) -> Starlette:
    """A Starlette app serving the Dockfile's agent. A path loads the Dockfile (env files
    beside it included) and resolves the agent module relative to its folder."""
    if isinstance(spec_or_path, DockSpec):
        spec, base_dir = spec_or_path, Path.cwd()
    else:
        path = Path(spec_or_path)
        spec, base_dir = load_dockspec(path, env_file=env_file), path.parent
    runtime = Runtime(spec, base_dir)
    endpoints = {
        "/health": runtime.health,
        "/ready": runtime.ready,
        "/info": runtime.info,
        "/schema": runtime.schema,
        "/invoke": runtime.invoke,
        "/invoke/stream": runtime.invoke_stream,
    }
    routes = [Route("/", runtime.welcome, methods=["GET"])]
    routes += [
        Route(path, endpoints[path], methods=[method]) for method, path in runtime.route_list()
    ]
    app = Starlette(
        routes=routes,
        lifespan=runtime.lifespan,
        exception_handlers={RuntimeHTTPError: _runtime_error, Exception: _unexpected_error},
    )
    app.state.runtime = runtime
    return app

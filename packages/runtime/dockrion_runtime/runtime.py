"""The runtime of one app: everything built once from the Dockfile (settings, auth,
metrics, the agent's thread pool, the run supervisor), what the lifespan brings up (the
agent, the events backend and its run manager), and how endpoints reach them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from dockrion_events import (
    AuthContext,
    BackendError,
    EventBackend,
    EventBus,
    EventRecord,
    InMemoryBackend,
    RunManager,
    StreamContext,
)
from dockrion_schema import RedisSentinelConfig

from ._version import __version__
from .agents import Agent, AgentLoadError, AgentThreads, import_target, load_agent
from .auth import Access, Authenticator, principal_of
from .auth.concurrency import CallerSlots, MemoryCallerSlots, RedisCallerSlots
from .auth.rate_limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter, limits_from
from .engine.input_check import CheckedBodyReader
from .engine.run_queue import QueueWorker, open_queue
from .engine.supervisor import RunSupervisor
from .engine.thread_services import ThreadServices
from .errors import RuntimeHTTPError, error_body
from .metrics import RuntimeMetrics
from .secret_env import MissingSecretError
from .serve.probes import ProbeListener
from .settings import RuntimeSettings
from .telemetry import RunTracer, run_telemetry
from .wire.sse import EventStreamResponse

__all__ = ["Runtime", "SubscriberLimit", "runtime_of"]

log = logging.getLogger("dockrion.runtime")


# A Pattern A log has one reader, which drops what it has read: how far an agent may run
# ahead of a slow client before its emits wait for that client, in events (and in bytes:
# `streaming.connection.max_backlog_bytes`).
STREAM_BACKLOG = 10_000


class SubscriberLimit:
    """Counts this process's open subscriptions per run, within
    `streaming.connection.max_subscribers_per_run`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, run_id: str) -> Callable[[], None]:
        """Take a place for one subscriber (429 when the run has none left); returns the
        function that gives it back."""
        count = self._counts.get(run_id, 0)
        if count >= self.limit:
            raise RuntimeHTTPError(
                f"Run '{run_id}' already has {count} subscribers (the limit is "
                f"{self.limit}); try again later",
                "TOO_MANY_SUBSCRIBERS",
            )
        self._counts[run_id] = count + 1

        def release() -> None:
            left = self._counts.get(run_id, 1) - 1
            if left > 0:
                self._counts[run_id] = left
            else:
                self._counts.pop(run_id, None)

        return release


class Runtime:
    """What the app is built from, made once and whole by `create_app` (nothing is set on
    it afterwards), and what the lifespan brings up: the agent, the events backend and its
    run manager. Endpoints reach it through `runtime_of(request)`."""

    def __init__(
        self,
        settings: RuntimeSettings,
        auth: Authenticator,
        *,
        access: Access,
        missing_secrets: list[str],
        listing: list[tuple[str, str]],
        openapi: dict[str, Any],
        probe_address: tuple[str, int] | None,
        run_agents: bool | None = None,
        tracer: RunTracer | None = None,
    ) -> None:
        self.settings = settings
        # Whether this process runs queued runs (`serve --no-run-agents`: an API only).
        self.run_agents = settings.redis.queue.run_agents if run_agents is None else run_agents
        self.auth = auth
        self.access = access  # the Dockfile's roles
        self.rate_limiter = self.build_rate_limiter()
        observability = settings.spec.observability
        self.metrics = RuntimeMetrics(
            settings.name, settings.version, observability.metrics if observability else None
        )
        # metrics, usage and budgets per caller (in the events backend once it is up), traces
        self.telemetry = run_telemetry(
            settings, self.metrics, tracer, lambda: self.runs.bus.backend if self.runs else None
        )
        self.usage = self.telemetry.usage
        self.slots = self.usage.guard(self.build_caller_slots())  # runs and streams per caller
        self._subscribers = self.metrics.subscribers.labels(settings.name)
        # the label values never change: each stream uses the same children
        self._open_streams = self.metrics.streams.labels(settings.name)
        self._events_sent = self.metrics.events.labels(settings.name)
        self.supervisor = RunSupervisor(settings, self.telemetry)
        arguments = settings.arguments
        self.body = CheckedBodyReader(
            settings.spec.io_schema.input,
            arguments.max_body_bytes,
            max_depth=arguments.max_json_depth,
            timeout=arguments.body_timeout_sec,
            policies=self.supervisor.policies,  # the input check, before any run
        )
        self._tool_check = self.supervisor.policies.tool_check()  # the same for every run
        self._redacts = self.supervisor.policies.output is not None
        self.subscribers = SubscriberLimit(settings.max_subscribers)
        self.thread_services = ThreadServices(settings, lambda: self.runs, self.supervisor.policies)
        self.threads = self.thread_services.registry  # what endpoints reach threads through
        self.agent_threads = AgentThreads(settings.arguments.worker_threads)
        self.agent: Agent | None = None
        self.runs: RunManager | None = None
        self.queue: QueueWorker | None = None  # background runs through Redis
        self.load_error: str | None = None
        # Required secrets that are unset: the agent is never loaded without them.
        self.missing_secrets = missing_secrets
        # Set when shutdown begins: not ready from then on.
        self.draining = False
        # `/health` and `/ready` on a port of their own (`expose.probe_port`, or `serve
        # --probe-port`), off the app's event loop.
        self.probes: ProbeListener | None = None
        if probe_address is not None:
            self.probes = ProbeListener(*probe_address, self.health)
        # From the route table: the welcome page's list of routes and the OpenAPI document.
        self.listing = listing
        self.openapi = openapi

    # --- what endpoints need ---------------------------------------------------------------

    def require_agent(self) -> Agent:
        if self.agent is None:
            raise RuntimeHTTPError(
                f"Agent not ready: {self.load_error or 'still loading'}", "AGENT_NOT_READY"
            )
        return self.agent

    def bind(self, context: StreamContext, request: Request) -> None:
        """Give a run's context its caller (`context.auth`), the tool policy
        (`context.is_tool_allowed`) and the output policies of everything it emits
        (`context.redaction`)."""
        self.bind_caller(context, principal_of(request).auth_context)

    def bind_caller(self, context: StreamContext, auth: AuthContext) -> None:
        """`bind`, for a run taken from the queue: its caller is in the queued job."""
        context.auth = auth
        context.tool_check = self._tool_check
        if self._redacts:
            context.redaction = self.supervisor.policies.run_redaction()

    async def start_private_run(
        self, request: Request, agent: Agent, payload: Any, via: str = "stream"
    ) -> tuple[str, AsyncIterator[list[EventRecord]], asyncio.Task[None]]:
        """Pattern A, on either transport: the agent started on a private one-reader log
        (nothing else can read it), with the subscription its one reader follows and the
        task to cancel when that reader goes away. Returns (run id, batches, task)."""
        supervisor = self.supervisor
        release = await self.slots.take(principal_of(request), "runs")
        threads, options = self.thread_services, None
        try:
            context, run_log = supervisor.private_context(STREAM_BACKLOG)
            self.bind(context, request)
            options = await threads.run_options(request, agent, context.run_id, via, payload)
            context.thread_id = options.thread_id if options else None
            await context.emit_started()
            tracer = self.telemetry.tracer
            origin = tracer.origin(request.headers.get("traceparent")) if tracer else None
            task = supervisor.spawn(
                supervisor.execute(agent, payload, context, options=options, origin=origin)
            )
        except BaseException:
            release()
            await threads.no_run(options)
            raise
        task.add_done_callback(lambda _: release())
        threads.stop_with(options, task.cancel)
        batches = run_log.batches(heartbeat=self.settings.heartbeat_interval)
        return context.run_id, batches, task

    async def subscriber_place(self, request: Request, run_id: str) -> Callable[[], None]:
        """A place for one more subscriber of `run_id`: one of the caller's streams
        (`auth.max_streams_per_caller`) and one of the run's subscribers
        (`max_subscribers_per_run`), 429 without; returns the function that gives both
        back."""
        release_stream = await self.slots.take(principal_of(request), "streams")
        try:
            release_subscriber = self.subscribers.acquire(run_id)
        except BaseException:
            release_stream()
            raise
        subscribers = self._subscribers
        subscribers.inc()

        def release() -> None:
            subscribers.dec()
            release_subscriber()
            release_stream()

        return release

    def require_runs(self) -> RunManager:
        if self.runs is None:
            raise RuntimeHTTPError(
                f"Runs not ready: {self.load_error or 'starting'}", "AGENT_NOT_READY"
            )
        return self.runs

    def event_stream(
        self,
        batches: AsyncIterator[list[EventRecord]],
        run_id: str,
        *,
        on_disconnect: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
        timeout: float | None = None,
        heartbeat_events: bool | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> EventStreamResponse:
        """An SSE response of a run's events, counted in the metrics (open streams, events
        sent), with heartbeat events when the filter lets them through (and
        `heartbeat_events` is not False: a wire format without them gets comments)."""
        streams = self._open_streams
        streams.inc()

        def closed() -> None:
            streams.dec()
            if on_close is not None:
                on_close()

        return EventStreamResponse(
            batches,
            run_id=run_id,
            heartbeat_events=self.settings.events_filter.allows_heartbeats
            and heartbeat_events is not False,
            on_disconnect=on_disconnect,
            on_close=closed,
            on_sent=self._events_sent.inc,
            timeout=timeout,
            extra_headers=extra_headers,
        )

    def health(self) -> dict[str, Any]:
        """The `/health` body (read-only: the probe listener calls it from its thread).
        `version` is the agent's (`metadata.version`), kept for clients that read it;
        `agent_version` says the same under a name that cannot be mistaken for
        `runtime_version`, the version of dockrion-runtime serving it."""
        settings = self.settings
        return {
            "status": "ok",
            "service": f"runtime:{settings.name}",
            "version": settings.version,
            "agent_version": settings.version,
            "runtime_version": __version__,
            "timestamp": datetime.now(UTC).isoformat(),
            "agent": settings.name,
            "framework": settings.framework,
        }

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """The `/ready` status and body."""
        reason = await self.not_ready_reason()
        if reason is None:
            return 200, {"success": True, "status": "ready", "agent": self.settings.name}
        code = "MISSING_SECRET" if self.missing_secrets else "AGENT_NOT_READY"
        code = "SHUTTING_DOWN" if self.draining else code
        body: dict[str, Any] = {"status": "not_ready", **error_body(reason, code)}
        if self.missing_secrets:
            body["missing_secrets"] = self.missing_secrets
        return 503, body

    async def not_ready_reason(self) -> str | None:
        """Why the app is not ready, or None. The backend is asked every time, so the app
        is ready again as soon as the backend answers."""
        if self.draining:
            return "the server is shutting down"
        if self.agent is None:
            return self.load_error or "agent is still loading"
        if self.runs is not None and not await self.runs.bus.backend.ping():
            return f"the {self.runs.bus.backend.name} events backend does not answer"
        return None

    # --- start-up and shutdown -------------------------------------------------------------

    def build_backend(self) -> EventBackend:
        settings = self.settings
        if settings.streaming.backend == "memory":
            memory = settings.memory
            return InMemoryBackend(
                max_events_per_run=memory.max_events_per_run,
                ttl_seconds=float(memory.retention_seconds),
                max_runs=memory.max_runs,
                max_threads=memory.max_threads,
            )
        redis = settings.redis
        if redis.sentinel is None and "${" in redis.url:
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
            cluster=redis.cluster,
            sentinel=sentinel_service(redis.sentinel),
        )

    def build_rate_limiter(self) -> RateLimiter:
        """Counts per process on the memory backend, shared through Redis on Redis."""
        auth = self.settings.spec.auth
        limits = limits_from(auth.rate_limits if auth is not None else {})
        redis = self.settings.redis
        unset_url = redis.sentinel is None and "${" in redis.url
        if not limits or self.settings.streaming.backend != "redis" or unset_url:
            return MemoryRateLimiter(limits)
        return RedisRateLimiter(
            limits, redis.url, redis.key_prefix, redis.cluster, sentinel_service(redis.sentinel)
        )

    def build_caller_slots(self) -> CallerSlots:
        """Counts per process on the memory backend, shared through Redis on Redis."""
        auth = self.settings.spec.auth
        redis = self.settings.redis
        unset_url = redis.sentinel is None and "${" in redis.url
        if self.settings.streaming.backend != "redis" or unset_url:
            return MemoryCallerSlots(auth)
        return RedisCallerSlots(
            auth,
            redis.url,
            redis.key_prefix,
            float(redis.lease_seconds),
            redis.cluster,
            sentinel_service(redis.sentinel),
        )

    def build_run_manager(self, backend: EventBackend) -> RunManager:
        settings = self.settings
        generator = None
        id_generator = settings.streaming.id_generator
        if id_generator is not None and id_generator.type == "custom" and id_generator.handler:
            loaded = import_target(id_generator.handler, settings.base_dir)
            if not callable(loaded):
                raise AgentLoadError(
                    f"streaming.id_generator.handler {id_generator.handler!r} is not callable"
                )
            generator = loaded
        return RunManager(
            EventBus(backend),
            allow_client_ids=settings.streaming.allow_client_ids,
            agent_name=settings.name,
            framework=settings.framework,
            id_generator=generator,
            events_filter=settings.events_filter,
            lease_seconds=float(settings.redis.lease_seconds),
        )

    def load_agent(self) -> Agent:
        """Import the agent (an entrypoint's factory runs here, once per process)."""
        if self.missing_secrets:
            raise AgentLoadError(str(MissingSecretError(self.missing_secrets)))
        if self.agent is None:
            settings = self.settings
            self.agent = load_agent(
                settings.spec, settings.base_dir, self.agent_threads, settings.events_filter
            )
        return self.agent

    async def keep_threads(self, agent: Agent) -> None:
        """Give the agent the checkpointer of `threads` when it has none of its own (the
        agent is not served when that fails)."""
        try:
            await self.thread_services.keep(agent)
        except AgentLoadError:
            self.agent = None
            raise

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        settings = self.settings
        try:
            if settings.async_runs:
                backend = self.build_backend()
                self.runs = self.build_run_manager(backend)
                self.threads.backend = backend  # threads shared wherever runs are
                try:
                    await backend.check()
                except BackendError as exc:
                    # Not ready until the backend answers; /ready keeps asking.
                    self.load_error = str(exc)
                    log.error("events backend not reachable: %s", exc)
                self.runs.start_reaper()
            await self.keep_threads(self.load_agent())
        except AgentLoadError as exc:
            # what the agent's code raised stays in the log unless errors are verbose
            self.load_error = str(exc) if settings.verbose_errors else exc.public
            log.error("agent not loaded: %s", exc)
        runs, metrics = self.runs, self.metrics
        self.queue = open_queue(settings, runs, self.supervisor, self.bind_caller, metrics)
        if self.queue is not None:
            self.queue.start(self.agent if self.run_agents else None)
        if self.probes is not None:
            await self.probes.start(self.readiness)
        yield
        self.draining = True
        if self.probes is not None:
            await self.probes.stop()
        if self.queue is not None:
            await self.queue.close()
        self.supervisor.cancel_all()
        if self.runs is not None:
            await self.runs.close()
            await self.runs.bus.close()
        await self.rate_limiter.close()
        await self.thread_services.close()
        await self.slots.close()
        await self.telemetry.close()
        self.agent_threads.shutdown()

    async def drain(self, grace: float) -> None:
        """Shutdown: not ready from now on (the probe listener says so at once), then
        `RunSupervisor.drain`."""
        self.draining = True
        if self.probes is not None:
            self.probes.publish(*await self.readiness())
        queued = [self.queue.drain(grace)] if self.queue is not None else []
        await asyncio.gather(self.supervisor.drain(grace), *queued)


def runtime_of(request: Request) -> Runtime:
    """The runtime of the app serving `request`."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def sentinel_service(config: RedisSentinelConfig | None) -> Any:
    """`streaming.redis.sentinel` as the events package's `SentinelService` (None without it;
    imported here only, since it needs the redis extra)."""
    if config is None:
        return None
    from dockrion_events.backends.redis_clients import SentinelService

    addresses: list[tuple[str, int]] = []
    for address in config.sentinels:  # validated `host:port`, IPv6 in brackets
        host, _, port = address.rpartition(":")
        addresses.append((host.strip("[]"), int(port)))
    return SentinelService(config.service_name, tuple(addresses), config.password)

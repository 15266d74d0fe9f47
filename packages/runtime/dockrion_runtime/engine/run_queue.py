"""Background runs through the queue every instance shares (the Redis backend): the API
submits each run, and workers (every `serve` by default, or `dockrion-runtime worker`
processes) take them, run the agent and acknowledge the run once its log has ended.

A worker renews its lease on the runs it holds; a run whose worker died (its lease ran
out) is taken over by another worker, which starts a new attempt: the same run id, its
log going on with a `started` event that carries the attempt number. A LangGraph graph
keeping its threads in a durable checkpointer continues from its last checkpoint; another
agent runs again from the start when `queue.retry` allows it (at least once), else the run
ends `RUN_ORPHANED`. On SIGTERM a worker stops taking runs, lets its runs finish within the
grace period, then hands the rest back to the queue for another worker to continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dockrion_events import (
    AuthContext,
    BackendError,
    RunFinishedError,
    RunManager,
    RunNotFoundError,
    RunStatus,
    StreamContext,
)
from dockrion_schema import RunQueueConfig

from ..agents import Agent, RunOptions
from ..metrics import RuntimeMetrics
from ..settings import RuntimeSettings
from .supervisor import RunSupervisor
from .thread_turns import ThreadTurn

if TYPE_CHECKING:
    from dockrion_events.backends.redis_queue import QueuedRun, RedisRunQueue

__all__ = ["HANDED_BACK", "QueueWorker", "job_of", "open_queue"]

log = logging.getLogger("dockrion.runtime")

# Why a worker stopped a run it hands back to the queue (no terminal event is written).
HANDED_BACK = "handed back to the queue"
# How long `take` waits for a run before looking at its stop flag again.
_TAKE_BLOCK_MS = 1000


def job_of(payload: Any, options: RunOptions | None, auth: AuthContext) -> dict[str, Any]:
    """What a worker needs to start a run, as JSON: the input, the caller, the thread."""
    job: dict[str, Any] = {"payload": payload, "auth": _auth_json(auth)}
    if options is not None and options.thread_id is not None:
        turn = options.turn
        thread: dict[str, Any] = {"id": options.thread_id}
        if isinstance(turn, ThreadTurn):
            thread["holder"] = turn.holder
            since = _rollback_since(turn)
            if since is not None:
                thread["rollback_since"] = since
        if options.resuming:
            thread.update(resuming=True, resume=options.resume, update=options.update)
        job["thread"] = thread
    return job


def _rollback_since(turn: ThreadTurn) -> float | None:
    """When the runs a rollback cancelled began (the argument of its removal), if any."""
    args: tuple[Any, ...] = getattr(turn.on_taken, "args", ())
    return float(args[1]) if len(args) == 2 else None


def _auth_json(auth: AuthContext) -> dict[str, Any]:
    data = {field.name: getattr(auth, field.name) for field in dataclasses.fields(auth)}
    data["claims"] = dict(auth.claims)
    return data


def _auth_of(data: dict[str, Any]) -> AuthContext:
    fields = {f.name for f in dataclasses.fields(AuthContext)}
    values = {key: value for key, value in data.items() if key in fields}
    for name in ("roles", "permissions", "scopes"):
        values[name] = tuple(values.get(name) or ())
    values["claims"] = MappingProxyType(dict(values.get("claims") or {}))
    return AuthContext(**values)


@dataclasses.dataclass(slots=True)
class _Held:
    """A run this worker holds: its task and, once made, its context."""

    run_id: str
    task: asyncio.Task[None] | None = None
    context: StreamContext | None = None
    handing_back: bool = False
    can_continue: bool = False


class QueueWorker:
    """Submits background runs to the queue and, in a process that runs agents, takes them
    and runs them."""

    def __init__(
        self,
        queue: RedisRunQueue,
        runs: RunManager,
        supervisor: RunSupervisor,
        config: RunQueueConfig,
        *,
        bind: Callable[[StreamContext, AuthContext], None],
        durable_threads: bool,
        lease_seconds: float,
        metrics: RuntimeMetrics,
    ) -> None:
        self.queue = queue
        self.runs = runs
        self.supervisor = supervisor
        self.config = config
        self._bind = bind
        self._durable_threads = durable_threads  # checkpoints that outlive the process
        self._lease_seconds = lease_seconds
        agent_name = supervisor.settings.name
        self._wait = metrics.queue_worker_wait.labels(agent_name)
        self._waiting = metrics.queue_waiting.labels(agent_name)
        self._held_gauge = metrics.queue_held.labels(agent_name)
        self._attempts = {
            outcome: metrics.queue_attempts.labels(agent_name, outcome)
            for outcome in ("continued", "retried", "orphaned")
        }
        self._claim_ms = config.claim_after_seconds * 1000
        self._held: dict[str, _Held] = {}
        self._room = asyncio.Event()
        self._agent: Agent | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._watchers: set[asyncio.Task[None]] = set()
        self.stopping = False

    @property
    def backend(self) -> Any:
        return self.runs.bus.backend

    # --- the API's side --------------------------------------------------------------------

    async def submit(
        self,
        run_id: str,
        payload: Any,
        options: RunOptions | None,
        auth: AuthContext,
        release: Callable[[], None] | None = None,
    ) -> None:
        """Queue a created (ACCEPTED) run for a worker; `release` (the caller's place for a
        run) is given back once the run has ended, wherever it ran."""
        self.runs.forget(run_id)  # the worker that takes it (maybe this process) makes one
        await self.backend.mark_queued(run_id)
        await self.queue.submit(run_id, job_of(payload, options, auth))
        if release is not None:
            watcher = asyncio.create_task(self._release_when_ended(run_id, release))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)

    async def _release_when_ended(self, run_id: str, release: Callable[[], None]) -> None:
        try:
            while True:
                await asyncio.sleep(1)
                with contextlib.suppress(BackendError):
                    if await self.runs.is_terminal(run_id):
                        return
        finally:
            release()

    # --- the worker's side -----------------------------------------------------------------

    def start(self, agent: Agent | None) -> None:
        """Take and run queued runs with `agent`; with None (an API instance, or an agent
        that did not load) only keep the queue's metrics."""
        self._agent = agent
        if agent is not None:
            self._loops.append(asyncio.create_task(self._take_loop(agent)))
        self._loops.append(asyncio.create_task(self._sweep_loop(agent)))

    @property
    def _free(self) -> int:
        return self.config.max_runs_per_worker - len(self._held)

    async def _take_loop(self, agent: Agent) -> None:
        while not self.stopping:
            if self._free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                taken = await self.queue.take(self._free, _TAKE_BLOCK_MS)
            except BackendError as exc:
                log.warning("cannot take runs from the queue: %s", exc)
                await asyncio.sleep(1)
                continue
            for queued in taken:
                self._begin(agent, queued, reclaimed=False)

    async def _sweep_loop(self, agent: Agent | None) -> None:
        """Renew this worker's hold on its runs, take over the runs of workers that died,
        and keep the queue's metrics."""
        every = max(0.25, self.config.claim_after_seconds / 4)
        while True:
            await asyncio.sleep(every)
            try:
                for entry_id in await self.queue.renew(list(self._held)):
                    self._lose(entry_id)
                if agent is not None and not self.stopping and self._free > 0:
                    for queued in await self.queue.reclaim(self._claim_ms, self._free):
                        self._begin(agent, queued, reclaimed=True)
                waiting, held = await self.queue.depth()
                self._waiting.set(waiting)
                self._held_gauge.set(held)
            except BackendError as exc:
                log.warning("queue sweep failed: %s", exc)

    def _lose(self, entry_id: str) -> None:
        """Another worker took this run over (this one stalled past the claim time): stop
        the agent here without ending the run."""
        held = self._held.get(entry_id)
        if held is not None and held.context is not None:
            log.warning("run %s was taken over by another worker: stopped here", held.run_id)
            held.handing_back = True
            held.context.cancel(HANDED_BACK)

    def _begin(self, agent: Agent, queued: QueuedRun, *, reclaimed: bool) -> None:
        if queued.entry_id in self._held:
            return
        held = self._held[queued.entry_id] = _Held(queued.run_id)
        if not reclaimed:
            submitted = int(queued.entry_id.split("-")[0]) / 1000
            self._wait.observe(max(0.0, time.time() - submitted))
        held.task = asyncio.create_task(self._run(agent, queued, held))
        held.task.add_done_callback(_report_failure)

    async def _run(self, agent: Agent, queued: QueuedRun, held: _Held) -> None:
        try:
            await self._attempt(agent, queued, held)
        except asyncio.CancelledError:
            if not held.handing_back:
                raise
        except BackendError as exc:
            held.handing_back = True  # a worker takes it again once Redis answers
            log.warning("run %s goes back to the queue: %s", queued.run_id, exc)
        finally:
            self._held.pop(queued.entry_id, None)
            self._room.set()
            with contextlib.suppress(BackendError):
                if held.handing_back:
                    await asyncio.shield(self.queue.hand_back(queued.entry_id, self._claim_ms))
                else:
                    await asyncio.shield(self.queue.done(queued.entry_id))

    async def _attempt(self, agent: Agent, queued: QueuedRun, held: _Held) -> None:
        runs = self.runs
        run = await runs.get_run(queued.run_id)
        if run is None or run.terminal:
            return  # cancelled before a worker took it, or expired: nothing to run
        job = queued.job
        auth = _auth_of(job.get("auth") or {})
        options = self._options(agent, job)
        continuing = self._continues(agent, options)
        held.can_continue = continuing or self.config.retry
        if run.status == RunStatus.ACCEPTED:
            context = runs.attach(run.run_id)
            self._prepare(held, context, auth, options)
            await self.supervisor.execute_run(runs, agent, job.get("payload"), context, options)
            return
        if not held.can_continue or run.attempt >= self.config.max_attempts:
            with contextlib.suppress(RunFinishedError, RunNotFoundError):
                await runs.end_orphaned(run.run_id)
                self._attempts["orphaned"].inc()
            return
        try:
            context, attempt = await runs.begin_attempt(run.run_id)
        except (RunFinishedError, RunNotFoundError):
            return
        self._prepare(held, context, auth, options)
        if continuing and options is not None:
            options = dataclasses.replace(options, continuing=True)
        outcome = "continued" if continuing else "retried"
        self._attempts[outcome].inc()
        log.warning("run %s: attempt %d on this worker (%s)", run.run_id, attempt, outcome)
        try:
            await self.supervisor.execute(
                agent, job.get("payload"), context, cancel_reason="cancelled", options=options
            )
        finally:
            runs.forget(run.run_id)

    def _prepare(
        self, held: _Held, context: StreamContext, auth: AuthContext, options: RunOptions | None
    ) -> None:
        self._bind(context, auth)
        context.thread_id = options.thread_id if options else None
        held.context = context
        task = held.task
        if task is not None:
            context.on_cancel(lambda: _cancel(task))  # DELETE, or the run ended elsewhere

    def _continues(self, agent: Agent, options: RunOptions | None) -> bool:
        """Whether a new attempt at this run goes on from its thread's last checkpoint."""
        on_thread = options is not None and options.thread_id is not None
        return on_thread and self._durable_threads and agent.continues_runs

    def _options(self, agent: Agent, job: dict[str, Any]) -> RunOptions | None:
        thread = job.get("thread")
        if not isinstance(thread, dict):
            return None
        thread_id = str(thread["id"])
        turn = ThreadTurn(self.backend, thread_id, self._lease_seconds, held=False)
        if thread.get("holder"):
            turn.holder = str(thread["holder"])  # its place in the thread's line
        since = thread.get("rollback_since")
        if since is not None:
            turn.on_taken = functools.partial(agent.roll_back_thread, thread_id, float(since))
        return RunOptions(
            thread_id=thread_id,
            resume=thread.get("resume"),
            resuming=bool(thread.get("resuming")),
            update=thread.get("update"),
            turn=turn,
        )

    # --- shutdown --------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop taking runs; let the runs held finish within `grace` s; then hand back those
        another worker can continue, and cancel the others (reason `shutdown`)."""
        self.stopping = True
        self._room.set()
        tasks = [held.task for held in self._held.values() if held.task is not None]
        if tasks:
            log.info("waiting up to %gs for %d running agent(s)", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        self.supervisor.shutting_down = True
        for held in list(self._held.values()):
            if held.context is None:  # not started here yet: another worker starts it
                held.handing_back = True
                if held.task is not None:
                    held.task.cancel()
            elif held.can_continue:
                held.handing_back = True
                held.context.cancel(HANDED_BACK)
            elif held.task is not None:
                held.task.cancel()
        rest = [held.task for held in self._held.values() if held.task is not None]
        if rest:
            await asyncio.wait(rest, timeout=5)

    async def close(self) -> None:
        self.stopping = True
        for task in [*self._loops, *self._watchers]:
            task.cancel()
        for task in [*self._loops, *self._watchers]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a queued run's task failed", exc_info=exc)


def open_queue(
    settings: RuntimeSettings,
    runs: RunManager | None,
    supervisor: RunSupervisor,
    bind: Callable[[StreamContext, AuthContext], None],
    metrics: RuntimeMetrics,
) -> QueueWorker | None:
    """The queue of background runs, with the Redis backend when `queue.enabled`."""
    config = settings.redis.queue
    if runs is None or settings.streaming.backend != "redis" or not config.enabled:
        return None
    backend: Any = runs.bus.backend
    return QueueWorker(
        backend.run_queue(runs.instance_id),
        runs,
        supervisor,
        config,
        bind=bind,
        durable_threads=settings.threads.checkpointer in ("sqlite", "postgres"),
        lease_seconds=float(settings.redis.lease_seconds),
        metrics=metrics,
    )

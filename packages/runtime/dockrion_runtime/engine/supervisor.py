"""The run supervisor: starts agents, bounds them in time, ends every run's log with exactly
one terminal event, and drains running agents on shutdown.

Every way a run can end lands here: the agent returns (`complete`), raises (`error` with a
stable code), overruns `max_run_duration` (`error` RUN_TIMEOUT, and the agent is told to
stop), or its task is cancelled (`cancelled`: a client that went away, a DELETE, or
shutdown). Whichever comes first wins; the log accepts only one terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from dockrion_events import (
    BaseEvent,
    EventEncodingError,
    EventsLostError,
    PrivateRunLog,
    RunCancelledError,
    RunFinishedError,
    RunManager,
    RunNotFoundError,
    RunStatus,
    StreamClosedError,
    StreamContext,
)

from ..agents import Agent, AgentResult, InvalidOutputError, RunOptions
from ..deadline import deadline
from ..errors import RuntimeHTTPError, agent_failure
from ..request.body import SchemaChecker
from ..settings import RuntimeSettings
from ..telemetry.observer import RunTelemetry, RunWatch
from ..telemetry.tracing import TraceOrigin
from .encoding import UnencodableError, event_data_problem, to_jsonable
from .policies import SafetyPolicies
from .thread_records import RecordedEnding

__all__ = ["RunSupervisor"]

_ids = random.Random()  # noqa: S311 - an identifier, not a secret
_random_bits = _ids.getrandbits
_UUID4_BITS = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant
_UUID4_MASK = ~((0xF << 76) | (0x3 << 62))


def _private_run_id() -> str:
    """A UUID 4 in its usual text form, for a run only its own request sees (`/invoke`,
    `/invoke/stream`): random, but not from the system's random source, which costs a
    system call per run."""
    text = f"{(_random_bits(128) & _UUID4_MASK) | _UUID4_BITS:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


log = logging.getLogger("dockrion.runtime")

# The run is over as far as its log is concerned: ended, or gone from the backend (a Redis
# restarted without persistence forgets runs).
_ENDED = (StreamClosedError, RunFinishedError, RunNotFoundError)


class RunSupervisor:
    """Owns the tasks of running agents for one app."""

    def __init__(self, settings: RuntimeSettings, telemetry: RunTelemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry  # every run's metrics, usage, budgets and trace
        io = settings.spec.io_schema
        self._output = SchemaChecker(io.output) if io.strict and io.output is not None else None
        self.policies = SafetyPolicies(settings.spec.policies)
        self._tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False

    # --- what an agent returns -------------------------------------------------------------

    def check_output(self, output: Any) -> tuple[Any, list[dict[str, Any]]]:
        """The output in its JSON form, redacted then truncated by the safety policies, and
        its problems against a strict `io_schema.output` (the output is returned as is, with
        the problems reported beside it); raises INVALID_OUTPUT, naming the type and where
        it sits, when a part of the output has no JSON form, and POLICY_VIOLATION when a
        redaction pattern matches under `halt_on_violation`."""
        try:
            jsonable = to_jsonable(output)
        except UnencodableError as exc:
            raise RuntimeHTTPError(
                f"Agent output is not JSON-serialisable: {exc}", exc.code
            ) from None
        jsonable = self.policies.apply_output(jsonable)
        problems = self._output.problems(jsonable) if self._output is not None else []
        return jsonable, problems

    def metadata(self, **extra: Any) -> dict[str, Any]:
        return {"agent": self.settings.name, "framework": self.settings.framework, **extra}

    # --- private one-run logs -------------------------------------------------------------

    def private_context(self, backlog: int) -> tuple[StreamContext, PrivateRunLog]:
        """A one-run log of our own (Pattern A), and the context that writes it: no shared
        backend involved. What a slow reader leaves unread is bounded in events (`backlog`)
        and in bytes (`streaming.connection.max_backlog_bytes`), in the log and in what a
        worker thread stages for it alike."""
        settings = self.settings
        max_bytes = settings.connection.max_backlog_bytes
        run_log = PrivateRunLog(_private_run_id(), backlog, max_bytes)
        context = StreamContext(
            run_log.run_id,
            run_log,
            agent_name=settings.name,
            framework=settings.framework,
            events_filter=settings.events_filter,
            max_pending_bytes=max_bytes,
        )
        return context, run_log

    def detached_context(self) -> StreamContext:
        """The context of a run whose events nobody reads (`POST /invoke`): each event is
        numbered, filtered and dropped, with no log behind it. Cancelling it still stops a
        sync agent at its next emit."""
        settings = self.settings
        return StreamContext(
            _private_run_id(),
            agent_name=settings.name,
            framework=settings.framework,
            queue_mode=True,
            events_filter=settings.events_filter,
            streaming_sink=_DISCARD,
        )

    # --- running ---------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start `work` as a tracked task (drained on shutdown)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_report_failure)
        return task

    def _watch(
        self, context: StreamContext, accepted: float | None, origin: TraceOrigin | None
    ) -> RunWatch:
        return self.telemetry.watch(
            context.run_id,
            context.auth,
            accepted=accepted,
            origin=origin,
            thread_id=context.thread_id,
        )

    async def invoke(
        self,
        agent: Agent,
        payload: Any,
        context: StreamContext,
        options: RunOptions | None = None,
        origin: TraceOrigin | None = None,
    ) -> AgentResult:
        """`POST /invoke`: the agent's output, within `arguments.timeout_sec`."""
        timeout = self.settings.invoke_timeout
        context.reserve_terminal_events()  # the output is the answer: agent code ends nothing
        watch = self._watch(context, None, origin)
        outcome, usage, failure = "failed", None, None
        try:
            await watch.begin()
            async with deadline(timeout), _turn_of(options):
                await _started(options)
                result = _result(
                    await agent.invoke(payload, context, streaming=False, options=options)
                )
            outcome, usage = "completed", result.metadata.get("usage")
            return result
        except TimeoutError:
            outcome, failure = "timeout", ("RUN_TIMEOUT", f"timed out after {timeout:g}s")
            context.cancel("timeout")  # a sync agent stops at its next emit
            raise RuntimeHTTPError(
                f"Agent invocation timed out after {timeout:g}s", "RUN_TIMEOUT"
            ) from None
        except RuntimeHTTPError as exc:
            failure = (exc.code, exc.message)
            raise  # a refusal with its own code (a policy violation in a streamed token)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            failure = (type(exc).__name__, str(exc))
            log.exception("agent failed on /invoke")
            raise agent_failure(exc, verbose=self.settings.verbose_errors) from None
        finally:
            await _ended(watch, outcome, usage, failure)

    async def execute(
        self,
        agent: Agent,
        payload: Any,
        context: StreamContext,
        cancel_reason: str = "client disconnected",
        options: RunOptions | None = None,
        *,
        accepted: float | None = None,
        origin: TraceOrigin | None = None,
    ) -> None:
        """Run the agent for one run and end its log with exactly one terminal event.
        `accepted` (a `time.time()`) is when a run that waited for its start was accepted;
        `origin` places it in its trace."""
        started = time.perf_counter()
        limit = self.settings.max_run_duration
        # Only the runtime ends the run, with what the agent returned after the policies.
        ending: Any = context.reserve_terminal_events()
        record = options.record if options is not None else None
        if record is not None:
            ending = RecordedEnding(ending, record)  # its thread keeps how it ended
        watch = self._watch(context, accepted, origin)
        outcome, usage, failure = "failed", None, None
        try:
            await watch.begin()
            async with asyncio.timeout(limit), _turn_of(options):
                await _started(options)
                result = _result(await agent.invoke(payload, context, options=options))
            usage = result.metadata.get("usage")
            output, problems = self.check_output(result.output)
            metadata = self.metadata(**result.metadata)
            if problems:
                metadata["output_schema_errors"] = problems
            await ending.complete(output, round(time.perf_counter() - started, 3), metadata)
            outcome = "completed"
        except (RunCancelledError, *_ENDED):
            outcome = "cancelled"
            if record is not None:
                await record.ended(RunStatus.CANCELLED)
            return  # the run already ended (cancelled): nothing more to say
        except TimeoutError:
            outcome = "timeout"
            failure = ("RUN_TIMEOUT", f"Run exceeded max_run_duration of {limit:g}s")
            with contextlib.suppress(*_ENDED):
                await ending.error(failure[1], "RUN_TIMEOUT")
            context.cancel("timeout")
        except asyncio.CancelledError as exc:
            outcome = "cancelled"
            # a run stopped for another one on its thread says so (`task.cancel(reason)`)
            given = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
            reason = "shutdown" if self.shutting_down else given or cancel_reason
            with contextlib.suppress(*_ENDED):
                await ending.cancelled(reason)
            context.cancel(reason)
            raise
        except EventsLostError as exc:  # a Redis failover lost events this run had stored
            log.error("run %s: %s", context.run_id, exc.message)
            with contextlib.suppress(*_ENDED):
                await ending.error(exc.message, exc.code, {"lost": [exc.first, exc.last]})
        except EventEncodingError as exc:
            failure = (exc.code, event_data_problem(exc))
            with contextlib.suppress(*_ENDED):
                await ending.error(failure[1], exc.code)
        except (RuntimeHTTPError, InvalidOutputError) as exc:
            message = exc.message if isinstance(exc, RuntimeHTTPError) else str(exc)
            failure = (exc.code, message)
            details = getattr(exc, "details", None)
            with contextlib.suppress(*_ENDED):
                await ending.error(
                    message, exc.code, details if isinstance(details, dict) else None
                )
        except Exception as exc:
            log.exception("agent failed on run %s", context.run_id)
            failure = (type(exc).__name__, str(exc))
            error = agent_failure(exc, verbose=self.settings.verbose_errors)
            with contextlib.suppress(*_ENDED):
                await ending.error(error.message, error.code, error.details)
        finally:
            await _ended(watch, outcome, usage, failure)

    async def execute_run(
        self,
        runs: RunManager,
        agent: Agent,
        payload: Any,
        context: StreamContext,
        options: RunOptions | None = None,
    ) -> None:
        """A background run: wait for its thread's turn, mark it running, execute, then let
        the manager forget it."""
        turn = options.turn if options is not None else None
        try:
            if turn is not None:
                await turn.wait()  # ACCEPTED until the thread is free
            run = await runs.start_run(context.run_id)
        except (RunFinishedError, RunNotFoundError):
            runs.forget(context.run_id)
            if turn is not None:
                await turn.end()
            return  # cancelled before it started, or the backend lost the run
        except BaseException:  # cancelled while starting: the agent never starts
            runs.forget(context.run_id)
            if turn is not None:
                await turn.end()
            raise
        if context.cancelled:  # cancelled as it started: never start the agent
            runs.forget(context.run_id)
            if turn is not None:
                await turn.end()
            return
        origin = TraceOrigin.from_metadata(run.metadata) if self.telemetry.tracer else None
        try:
            await self.execute(
                agent,
                payload,
                context,
                cancel_reason="cancelled",
                options=options,
                accepted=run.created_at.timestamp(),
                origin=origin,
            )
        finally:
            runs.forget(context.run_id)

    # --- shutdown --------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Let running agents finish within `grace` s, then cancel the rest with reason
        `shutdown` so every open stream gets its terminal event before closing."""
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            log.info("waiting up to %gs for %d running agent(s)", grace, len(pending))
            _, pending_set = await asyncio.wait(pending, timeout=grace)
            self.shutting_down = True
            for task in pending_set:
                task.cancel()
            if pending_set:
                await asyncio.wait(pending_set, timeout=5)

    def cancel_all(self) -> None:
        self.shutting_down = True
        for task in list(self._tasks):
            task.cancel()


class _Discard:
    """A streaming sink that takes every event and keeps none."""

    name = "discard"

    def emit(self, event: BaseEvent) -> bool:
        return True

    def is_available(self) -> bool:
        return True


_DISCARD = _Discard()


async def _ended(
    watch: RunWatch, outcome: str, usage: Any, failure: tuple[str, str] | None
) -> None:
    """Close a run's telemetry; what fails there never changes how the run ended."""
    try:
        await watch.end(outcome, usage=usage, error=failure)
    except Exception:
        log.exception("telemetry of a run failed")


def _turn_of(options: RunOptions | None) -> contextlib.AbstractAsyncContextManager[None]:
    """The run's turn on its thread, held for the block (nothing without a thread)."""
    turn = options.turn if options is not None else None
    return turn.running() if turn is not None else contextlib.nullcontext()


async def _started(options: RunOptions | None) -> None:
    """The run holds its thread's turn: its thread's record says it is running."""
    record = options.record if options is not None else None
    if record is not None:
        await record.started()


def _report_failure(task: asyncio.Task[None]) -> None:
    """Log what a run's task raised, so no failure goes unseen (or unretrieved)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a run's task failed", exc_info=exc)


def _result(returned: Any) -> AgentResult:
    return returned if isinstance(returned, AgentResult) else AgentResult(returned)

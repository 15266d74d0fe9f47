"""The guards every emit passes: the server's redaction of what an event carries, and the
terminal events a server reserves to itself (`RunEnding`, the one way to end such a run)."""

from __future__ import annotations

from typing import Any

from . import _builders as builders
from ._context_state import ContextState
from .errors import TerminalEventError
from .filter import Redaction
from .models import BaseEvent
from .runs import RunStatus

__all__ = ["EmitGuards", "RunEnding"]


class EmitGuards(ContextState):
    """Redaction and the terminal-event reservation, shared by the async and sync emitters."""

    @property
    def redaction(self) -> Redaction | None:
        """The server's redaction of this run's events (None: events go out as emitted)."""
        return self._redaction

    @redaction.setter
    def redaction(self, value: Redaction | None) -> None:
        self._redaction = value

    def reserve_terminal_events(self) -> RunEnding:
        """Keep `complete`, `error` and `cancelled` for the caller, the server that runs the
        agent: from now on `emit_complete`, `emit_error` and `emit_cancelled` raise
        `TerminalEventError`, and the returned `RunEnding` is the one way to end the run."""
        if self._ending is not None:
            raise RuntimeError(f"the terminal events of run '{self._run_id}' are reserved")
        self._ending = RunEnding(self)
        return self._ending

    def _reserved(self, method: str, instead: str) -> None:
        if self._ending is not None:
            raise TerminalEventError(
                f"{method}() is reserved to the server running this agent (run "
                f"'{self._run_id}'): {instead}"
            )

    def _redacted(self, build: builders.Build) -> builders.Build:
        redaction = self._redaction
        return build if redaction is None else builders.redacted(build, redaction.scrub)

    def _check_custom_name(self, name: str) -> None:
        """A custom event's name is its type on the wire (`custom:<name>`), which cannot be
        rewritten: a name that redaction would change is refused, without repeating it."""
        redaction = self._redaction
        if redaction is not None and redaction.scrub(name) != name:
            raise ValueError(
                "a custom event's name matches a redaction pattern; names are sent as "
                "they are, so the event was not emitted: put the value in its data"
            )

    def _token(
        self, content: str, finish_reason: str | None, node_name: str | None
    ) -> builders.Build | None:
        """The token event, its text fed to redaction as it arrives; None while redaction
        holds the text back until more text (or the end) shows what it is."""
        redaction = self._redaction
        if redaction is not None:
            content = redaction.feed(content)
            if not content and finish_reason is None:
                return None
            if node_name is not None:
                node_name = redaction.scrub(node_name)
        return builders.token(self._run_id, content, finish_reason, node_name)

    async def _flush_tokens(self) -> None:
        # Before `complete` or `error` only: a cancelled run drops what the filter holds.
        if self._redaction is not None and not self.closed:
            held = self._redaction.flush()
            if held and self._allowed("token"):
                await self._stage.emit("token", builders.token(self._run_id, held, None, None))

    async def _complete(
        self, output: Any, latency_seconds: float | None, metadata: dict[str, Any] | None
    ) -> BaseEvent:
        await self._flush_tokens()
        if self._redaction is not None:
            output = self._redaction.scrub(output)
            metadata = self._redaction.scrub(metadata) if metadata else metadata
        return await self._stage.finish(
            RunStatus.COMPLETED,
            "complete",
            builders.complete(self._run_id, output, latency_seconds, metadata),
            output=output,
        )

    async def _error(self, error: str, code: str, details: dict[str, Any] | None) -> BaseEvent:
        await self._flush_tokens()
        if self._redaction is not None:
            error = self._redaction.scrub(error, may_refuse=False)
            details = self._redaction.scrub(details, may_refuse=False) if details else details
        return await self._stage.finish(
            RunStatus.FAILED,
            "error",
            builders.error(self._run_id, error, code, details),
            error={"message": error, "code": code, "details": details},
        )

    async def _cancelled(self, reason: str | None) -> BaseEvent:
        if self._redaction is not None and reason:
            reason = self._redaction.scrub(reason, may_refuse=False)
        event = await self._stage.finish(
            RunStatus.CANCELLED, "cancelled", builders.cancelled(self._run_id, reason)
        )
        self.cancel(reason)
        return event


class RunEnding:
    """Ends a run whose terminal events a server reserved
    (`StreamContext.reserve_terminal_events`); the same rules as the `emit_*` methods
    (redaction, one terminal event)."""

    __slots__ = ("_context",)

    def __init__(self, context: EmitGuards) -> None:
        self._context = context

    async def complete(
        self,
        output: Any,
        latency_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> BaseEvent:
        return await self._context._complete(output, latency_seconds, metadata)

    async def error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> BaseEvent:
        return await self._context._error(error, code, details)

    async def cancelled(self, reason: str | None = None) -> BaseEvent:
        return await self._context._cancelled(reason)

"""The sync emit surface of `StreamContext`: what a handler in a worker thread calls. Each
`sync_*` stages the event, numbered at once, for the context's loop to write."""

from __future__ import annotations

from typing import Any

from . import _builders as builders
from ._emit_guards import EmitGuards

__all__ = ["SyncEmitters"]


class SyncEmitters(EmitGuards):
    """The `sync_*` methods of `StreamContext`."""

    def sync_emit_progress(self, step: str, progress: float, message: str | None = None) -> bool:
        if not self._allowed("progress"):
            return False
        self._stage.stage(
            "progress", self._redacted(builders.progress(self._run_id, step, progress, message))
        )
        return True

    def sync_checkpoint(self, name: str, data: dict[str, Any] | None = None) -> bool:
        if not self._allowed("checkpoint"):
            return False
        self._stage.stage(
            "checkpoint", self._redacted(builders.checkpoint(self._run_id, name, data))
        )
        return True

    def sync_emit_token(
        self, content: str, finish_reason: str | None = None, *, node_name: str | None = None
    ) -> bool:
        if not self._allowed("token"):
            return False
        build = self._token(content, finish_reason, node_name)
        if build is not None:  # None: held back by redaction
            self._stage.stage("token", build)
        return True

    def sync_emit_tool_call(
        self,
        name: str,
        arguments: Any = None,
        call_id: str | None = None,
        *,
        node_name: str | None = None,
    ) -> bool:
        if not self._allowed("tool_call"):
            return False
        build = builders.tool_call(self._run_id, name, arguments or {}, call_id, node_name)
        self._stage.stage("tool_call", self._redacted(build))
        return True

    def sync_emit_tool_result(
        self,
        call_id: str | None,
        name: str | None = None,
        content: Any = None,
        *,
        is_error: bool = False,
        node_name: str | None = None,
    ) -> bool:
        if not self._allowed("tool_result"):
            return False
        build = builders.tool_result(self._run_id, call_id, name, content, is_error, node_name)
        self._stage.stage("tool_result", self._redacted(build))
        return True

    def sync_emit_step(
        self,
        node_name: str,
        duration_ms: int | None = None,
        input_keys: list[str] | None = None,
        output_keys: list[str] | None = None,
    ) -> bool:
        if not self._allowed("step"):
            return False
        build = builders.step(self._run_id, node_name, duration_ms, input_keys, output_keys)
        self._stage.stage("step", self._redacted(build))
        return True

    def sync_emit(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> bool:
        name, build = builders.custom(self._run_id, event_type, data, fields)
        if not self._allowed("custom", name):
            return False
        self._check_custom_name(name)
        self._stage.stage(f"custom:{name}", self._redacted(build))
        return True

    def sync_emit_heartbeat(self) -> bool:
        """See `emit_heartbeat`: records nothing."""
        return False

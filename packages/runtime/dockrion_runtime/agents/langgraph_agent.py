"""LangGraph graphs (`framework: langgraph`), streamed natively through our events.

The graph runs with `astream`, asking only for the stream modes the event filter lets
through (plus `values`, for the final state): LLM tokens (messages) become `token`, a node
finishing (updates) becomes `step`, what nodes write with LangGraph's stream writer
(custom) becomes `progress`, `checkpoint` or `custom:<name>`, and the last state is the
output. Node code may also emit through `get_current_context()`.
"""

from __future__ import annotations

import time
from typing import Any

from dockrion_events import EventsFilter, StreamContext, context_scope

from .base import Agent, RunOptions
from .chunks import emit_chunk

__all__ = ["LangGraphAgent"]


class LangGraphAgent(Agent):
    def __init__(self, graph: Any, *, target: str, events_filter: EventsFilter) -> None:
        super().__init__(graph.ainvoke, wants_context=False, target=target)
        self._graph = graph
        modes = [mode for mode in events_filter.get_langgraph_stream_modes() if mode != "values"]
        self._modes = [*modes, "values"]

    async def invoke(
        self,
        payload: Any,
        context: StreamContext | None,
        *,
        streaming: bool = True,
        options: RunOptions | None = None,
    ) -> Any:
        if context is None or not streaming:
            with context_scope(context):
                return await self._graph.ainvoke(payload)
        final: Any = None
        state: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
        last_step = time.perf_counter()
        with context_scope(context):
            async for mode, chunk in self._graph.astream(payload, stream_mode=self._modes):
                if mode == "messages":
                    message = chunk[0]
                    content = getattr(message, "content", "")
                    if isinstance(content, str) and content:
                        await context.emit_token(content)
                elif mode == "updates":
                    now = time.perf_counter()
                    for node, update in (chunk or {}).items():
                        if node.startswith("__"):
                            continue  # LangGraph's own bookkeeping (interrupts)
                        output_keys = sorted(update) if isinstance(update, dict) else []
                        await context.emit_step(
                            node,
                            duration_ms=round((now - last_step) * 1000),
                            input_keys=sorted(state),
                            output_keys=output_keys,
                        )
                        if isinstance(update, dict):
                            state.update(update)
                    last_step = now
                elif mode == "custom":
                    if isinstance(chunk, tuple) and len(chunk) == 2:  # dockrion's LangGraphBackend
                        kind, fields = chunk
                        chunk = {"type": kind, **fields} if isinstance(fields, dict) else chunk
                    await emit_chunk(context, _custom_chunk(chunk), [])
                elif mode == "values":
                    final = chunk
        return final


def _custom_chunk(chunk: Any) -> Any:
    """Writer data: built-in types keep theirs; any other `{"type": name, ...}` is
    `custom:<name>` with the remaining fields."""
    if isinstance(chunk, dict):
        kind = str(chunk.get("type", ""))
        if kind in ("token", "progress", "checkpoint", "step", "custom"):
            return chunk
        name = kind.removeprefix("custom:") or "update"
        data = {key: value for key, value in chunk.items() if key != "type"}
        return {"type": "custom", "event_type": name, "data": data}
    return {"type": "custom", "event_type": "update", "data": {"value": chunk}}

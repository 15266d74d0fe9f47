"""Chunks that an entrypoint runner streams (`stream`/`astream`), turned into events.

A string is a token, and so is the text of a LangChain message chunk (with the model's
`finish_reason` when the chunk carries one); a dict names its
event by `type` (`token`, `progress`, `checkpoint`, `step`, `custom`);
`{"type": "result", "data": ...}` carries the run's output and is collected rather than
emitted; anything else is a token of its `str()`.
"""

from __future__ import annotations

from typing import Any

from dockrion_events import StreamContext

from .text import finish_reason

__all__ = ["chunk_call", "emit_chunk", "emit_chunk_sync"]

_CHUNK_FIELDS = {
    "token": ("content", "finish_reason"),
    "progress": ("step", "progress", "message"),
    "checkpoint": ("name", "data"),
    "step": ("node_name", "duration_ms", "input_keys", "output_keys"),
}


def chunk_call(chunk: Any, result: list[Any]) -> tuple[str, dict[str, Any]] | None:
    """What to emit for one streamed chunk: (event kind, arguments), or None."""
    if isinstance(chunk, str):
        return "token", {"content": chunk}
    if not isinstance(chunk, dict):
        content = getattr(chunk, "content", None)  # a LangChain message chunk
        if isinstance(content, str):
            reason = finish_reason(chunk)
            if reason is not None:
                return "token", {"content": content, "finish_reason": reason}
            return ("token", {"content": content}) if content else None
        return "token", {"content": str(chunk)}
    kind = chunk.get("type")
    if kind == "result":
        result.append(chunk.get("data"))
        return None
    if kind == "step" and "node_name" not in chunk and "node" in chunk:
        chunk = {**chunk, "node_name": chunk["node"]}
    if kind in _CHUNK_FIELDS:
        names = _CHUNK_FIELDS[kind]
        return str(kind), {name: chunk[name] for name in names if name in chunk}
    if kind == "custom":
        return "custom", {
            "event_type": chunk.get("event_type", "custom"),
            "data": chunk.get("data"),
        }
    return None


async def emit_chunk(context: StreamContext, chunk: Any, result: list[Any]) -> None:
    """Emit one streamed chunk as its event (`result` collects `{"type": "result"}` data)."""
    call = chunk_call(chunk, result)
    if call is None:
        return
    kind, arguments = call
    if kind == "token":
        await context.emit_token(**arguments)
    elif kind == "progress":
        await context.emit_progress(**arguments)
    elif kind == "checkpoint":
        await context.checkpoint(**arguments)
    elif kind == "step":
        await context.emit_step(**arguments)
    else:
        await context.emit(arguments["event_type"], arguments["data"])


def emit_chunk_sync(context: StreamContext, chunk: Any, result: list[Any]) -> None:
    """`emit_chunk` for a sync runner's chunks, from its worker thread."""
    call = chunk_call(chunk, result)
    if call is None:
        return
    kind, arguments = call
    if kind == "token":
        context.sync_emit_token(**arguments)
    elif kind == "progress":
        context.sync_emit_progress(**arguments)
    elif kind == "checkpoint":
        context.sync_checkpoint(**arguments)
    elif kind == "step":
        context.sync_emit_step(**arguments)
    else:
        context.sync_emit(arguments["event_type"], arguments["data"])

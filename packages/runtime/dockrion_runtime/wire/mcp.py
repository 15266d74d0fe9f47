"""A tool call's run as MCP Streamable HTTP messages: the JSON-RPC frames of one call's
Server-Sent Events stream, made from the run's log.

Each stored event gives at most one message: a token or a progress event a progress
notification (when the caller sent a `progressToken`; its `progress` is the event's
sequence, so it only ever grows), the terminal event the call's JSON-RPC answer. Every
frame's SSE `id:` is `<run_id>/<sequence>`, so a client that comes back with the last id it
saw (`Last-Event-ID`) gets exactly the messages after it: the same pure translation of the
same log, the ones it has left out.

Importing this module needs the `mcp` extra (`pip install 'dockrion-runtime[mcp]'`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mcp_types import (
    INTERNAL_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCResponse,
    TextContent,
)

from dockrion_events import EventRecord

__all__ = [
    "RUN_META_KEY",
    "McpCall",
    "McpCursor",
    "call_frames",
    "message_json",
    "result_dict",
    "tool_result",
]

# `_meta` key of a tool result naming the Dockrion run behind it.
RUN_META_KEY = "dockrion/run_id"
_CURSOR = re.compile(r"([a-zA-Z0-9][a-zA-Z0-9_-]{0,127})/([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class McpCursor:
    """Where a client is in a call's stream: everything up to stored event `sequence` of
    run `run_id` (the SSE id `<run_id>/<sequence>`)."""

    run_id: str
    sequence: int

    @classmethod
    def parse(cls, text: str) -> McpCursor | None:
        match = _CURSOR.fullmatch(text)
        if match is None:
            return None
        return cls(match.group(1), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.run_id}/{self.sequence}"


@dataclass(frozen=True, slots=True)
class McpCall:
    """What a call's messages carry: its JSON-RPC id and the caller's progress token."""

    run_id: str
    request_id: str | int
    progress_token: str | int | None = None


def message_json(message: JSONRPCResponse | JSONRPCError | JSONRPCNotification) -> str:
    """A JSON-RPC message as the wire writes it (camelCase, unset fields left out)."""
    return message.model_dump_json(by_alias=True, exclude_none=True)


def result_dict(result: CallToolResult) -> dict[str, Any]:
    """A tool result as the handshake revisions write it (no `resultType`, a later
    revision's field)."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    dumped.pop("resultType", None)
    return dumped


def tool_result(output: Any, run_id: str, *, error: str | None = None) -> CallToolResult:
    """The tool's answer: the output as text (a string as it is, anything else as JSON)
    and, as structured content, the output when it is an object, else `{"result": output}`.
    `error`: a failed run, told as a tool error the model can read."""
    meta = {RUN_META_KEY: run_id}
    if error is not None:
        return CallToolResult(
            content=[TextContent(type="text", text=error)], is_error=True, _meta=meta
        )
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    structured = output if isinstance(output, dict) else {"result": output}
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=False,
        _meta=meta,
    )


def _message(
    record: EventRecord, call: McpCall
) -> JSONRPCResponse | JSONRPCError | JSONRPCNotification | None:
    kind = record.type
    if kind in ("token", "progress"):
        if call.progress_token is None:
            return None
        data = json.loads(record.data)
        if kind == "token":
            text = data.get("content")
        else:
            step, said = data.get("step"), data.get("message")
            text = f"{step}: {said}" if said else step
        params: dict[str, Any] = {"progressToken": call.progress_token, "progress": record.sequence}
        if isinstance(text, str) and text:
            params["message"] = text
        return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=params)
    if kind == "complete":
        output = json.loads(record.data).get("output")
        result = tool_result(output, call.run_id)
    elif kind == "error":
        data = json.loads(record.data)
        result = tool_result(None, call.run_id, error=f"{data.get('code')}: {data.get('error')}")
    elif kind == "cancelled":
        reason = json.loads(record.data).get("reason") or "cancelled"
        error = ErrorData(
            code=INTERNAL_ERROR,
            message=f"The run was cancelled: {reason}",
            data={"code": "CANCELLED", "run_id": call.run_id},
        )
        return JSONRPCError(jsonrpc="2.0", id=call.request_id, error=error)
    else:
        return None
    return JSONRPCResponse(jsonrpc="2.0", id=call.request_id, result=result_dict(result))


def _frame(event_id: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: message\ndata: {data}\n\n".encode()


async def call_frames(
    batches: AsyncIterator[list[EventRecord]], call: McpCall, after: int | None
) -> AsyncIterator[list[EventRecord]]:
    """A run's stored events from its start -> the call's SSE frames (as records whose
    `frame` is the message with its `id:`), leaving out those up to sequence `after`. A new
    stream (`after` None) opens with a frame of no data naming the first event, so a client
    cut before the first message can still resume. An empty batch passes through."""
    primed = after is not None
    try:
        async for batch in batches:
            frames: list[EventRecord] = []
            for record in batch:
                message = _message(record, call)
                event_id = f"{call.run_id}/{record.sequence}"
                if not primed:
                    primed = True
                    if message is None:
                        frames.append(
                            EventRecord(record.sequence, "message", "", _frame(event_id, ""))
                        )
                        continue
                if message is None or (after is not None and record.sequence <= after):
                    continue
                text = message_json(message)
                frames.append(EventRecord(record.sequence, "message", text, _frame(event_id, text)))
            if frames or not batch:
                yield frames
    finally:
        await batches.aclose()  # type: ignore[attr-defined]

"""A run's stored events as LangGraph Server's stream: the event names and data shapes that
`langgraph-sdk` and `@langchain/langgraph-sdk` parse.

Each stream mode is a view of the same log: `metadata` first (the run id), `messages`
(`messages-tuple`: `[chunk, metadata]` per token, the chunks of one message sharing an
`id`), `messages/metadata`, `messages/partial` and `messages/complete` (`messages`), `values`
(the state; the final one carries `__interrupt__` when the run stopped at an interrupt),
`updates` (`{node: update}` per step), `custom` (what the agent writes), and `error` when the
run fails. Every frame has an `id:` so the clients resume: `<sequence>.<place>`, the stored
event it was made from and its place among the frames that event can make (fixed, whatever
the modes). The translation is a pure function of the log, so a client that sends back the
last id it saw gets exactly the frames after it (the stream is rebuilt from the log's start
and the frames it has are left out); `-1` asks for everything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic_core import from_json

from dockrion_events import EventRecord

from .cursor import FrameCursor

__all__ = ["STREAM_MODES", "LgCursor", "LgTranslator", "lg_batches"]

# The modes the clients may ask for; `messages-tuple` is sent as `messages` events. Those
# with no frame here (events, debug, tasks, checkpoints, tools, lifecycle) send nothing.
STREAM_MODES = frozenset(
    {
        "values",
        "updates",
        "messages",
        "messages-tuple",
        "custom",
        "events",
        "debug",
        "tasks",
        "checkpoints",
        "tools",
        "lifecycle",
    }
)
# Fields every stored event carries; what is left is the event's own data.
_BASE_FIELDS = ("id", "type", "run_id", "sequence", "timestamp")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# the stream's ids and where a client is in it
LgCursor = FrameCursor


def custom_value(kind: str, fields: dict[str, Any]) -> Any:
    """What the agent wrote with its stream writer, from a stored custom event: a plain value
    written as `{"value": v}` under the name `update` is `v` again; a dict written without a
    `type` is itself; otherwise the fields with their `type`."""
    name = kind.removeprefix("custom:")
    if name == "update":
        if set(fields) == {"value"}:
            return fields["value"]
        return fields
    return {"type": name, **fields}


# Each frame a stored event can make has a fixed place, so its id (`<sequence>.<place>`)
# does not depend on the modes a client asked for.
_PLACES = {
    "messages/complete": 0,
    "messages": 1,
    "messages/metadata": 2,
    "messages/partial": 3,
    "metadata": 4,
    "updates": 5,
    "values": 6,
    "custom": 7,
    "error": 8,
}
Frame = tuple[int, str, str]  # (place, event name, data JSON)


class LgTranslator:
    """The LangGraph stream frames of one run for the modes a client asked for, fed the
    run's stored events in order."""

    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str | None,
        assistant_id: str,
        graph_id: str,
        modes: Iterable[str],
    ) -> None:
        self.run_id = run_id
        wanted = frozenset(modes)
        self._tuples = "messages-tuple" in wanted
        self._full = "messages" in wanted
        self._values = "values" in wanted
        self._updates = "updates" in wanted
        self._custom = "custom" in wanted
        self._meta = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "graph_id": graph_id,
        }
        self._open: str | None = None  # the id of the AI message being streamed
        self._node: str | None = None
        self._count = 0
        self._message: dict[str, Any] | None = None  # its text so far (`messages` mode)
        self._suffix = ""  # a chunk's JSON after its content, for the open message
        self._states = False  # the log has the state after each step

    def feed(self, record: EventRecord) -> list[Frame]:
        kind = record.type
        out: list[Frame] = []
        if kind == "token":
            if self._tuples or self._full:
                self._token(from_json(record.data), out)
            return out
        self._end_message(out)
        data = from_json(record.data)
        fields = {key: value for key, value in data.items() if key not in _BASE_FIELDS}
        if kind == "started":
            out.append((4, "metadata", _dumps({"run_id": self.run_id, "attempt": 1})))
        elif kind == "step":
            if self._updates:
                out.append((5, "updates", _dumps({fields.get("node_name"): fields.get("update")})))
        elif kind == "state":
            self._states = True
            if self._values:
                out.append((6, "values", _dumps(fields.get("values"))))
        elif kind in ("progress", "checkpoint"):
            if self._custom:
                out.append((7, "custom", _dumps({"type": kind, **fields})))
        elif kind.startswith("custom:"):
            if self._custom:
                out.append((7, "custom", _dumps(custom_value(kind, fields))))
        elif kind == "complete":
            output = fields.get("output")
            waiting = output.get("__interrupt__") if isinstance(output, dict) else None
            if waiting and self._updates:
                out.append((5, "updates", _dumps({"__interrupt__": waiting})))
            # with the state after each step, the last one was the final state
            if self._values and (waiting or not self._states):
                out.append((6, "values", _dumps(output)))
        elif kind == "error":
            details = fields.get("details") or {}
            name = details.get("type") if isinstance(details, dict) else None
            error = {"error": name or fields.get("code", "Error"), "message": fields.get("error")}
            out.append((8, "error", _dumps(error)))
        return out

    def _token(self, data: dict[str, Any], out: list[Frame]) -> None:
        node = data.get("node_name")
        given = data.get("message_id")
        message_id = self._open
        if (
            message_id is None
            or (given is not None and given != message_id)
            or (given is None and node != self._node)
        ):
            self._end_message(out)
            self._count += 1
            message_id = self._open = given or f"run-{self.run_id}-{self._count}"
            self._node = node
            metadata = _dumps({**self._meta, "run_attempt": 1, "langgraph_node": node})
            self._suffix = (
                ',"additional_kwargs":{},"response_metadata":{},"type":"AIMessageChunk",'
                f'"name":null,"id":{_dumps(message_id)},"tool_calls":[],'
                '"invalid_tool_calls":[],"usage_metadata":null,"tool_call_chunks":[],'
                f'"chunk_position":null}},{metadata}]'
            )
            if self._full:
                self._message = {"content": "", "type": "AIMessageChunk", "id": message_id}
                out.append(
                    (2, "messages/metadata", f'{{{_dumps(message_id)}:{{"metadata":{metadata}}}}}')
                )
        content = str(data.get("content", ""))
        if self._tuples:
            out.append((1, "messages", '[{"content":' + _dumps(content) + self._suffix))
        if self._message is not None:
            self._message["content"] += content
            out.append((3, "messages/partial", _dumps([self._message])))
        out.sort()

    def _end_message(self, out: list[Frame]) -> None:
        if self._open is None:
            return
        self._open = None
        message, self._message = self._message, None
        if message is not None:
            out.append((0, "messages/complete", _dumps([{**message, "type": "ai"}])))


def _frame(event_id: str, name: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


async def lg_batches(
    batches: AsyncIterator[list[EventRecord]],
    translator: LgTranslator,
    after: LgCursor | None,
) -> AsyncIterator[list[EventRecord]]:
    """A run's stored events from its start -> LangGraph SSE frames (as records whose
    `frame` is the LangGraph event, with its id `<sequence>.<place>`), leaving out those
    the client has (`after`). An empty batch (the log is idle) passes through."""
    try:
        async for batch in batches:
            frames: list[EventRecord] = []
            for record in batch:
                sequence = record.sequence
                for place, name, data in translator.feed(record):
                    if after is not None and after.has(sequence, place):
                        continue
                    event_id = f"{sequence}.{place}"
                    frames.append(
                        EventRecord(sequence, name, data, frame=_frame(event_id, name, data))
                    )
            if frames or not batch:
                yield frames
    finally:
        await batches.aclose()  # type: ignore[attr-defined]

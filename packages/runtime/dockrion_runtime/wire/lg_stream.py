"""A run's stored events as LangGraph Server's stream: the event names and data shapes that
`langgraph-sdk` and `@langchain/langgraph-sdk` parse.

Each stream mode is a view of the same log: `metadata` first (the run id), `messages`
(`messages-tuple`: `[chunk, metadata]` per token, the chunks of one message sharing an
`id`), `messages/metadata`, `messages/partial` and `messages/complete` (`messages`), `values`
(the state; the final one carries `__interrupt__` when the run stopped at an interrupt),
`updates` (`{node: update}` per step), `custom` (what the agent writes), and `error` when the
run fails. Every frame has an `id:` so the clients resume: `<sequence>` for the last frame
made from a stored event, `<sequence>.<n>` for the ones before it. The translation is a pure
function of the log, so a client that sends back the last id it saw gets exactly the frames
after it (the stream is rebuilt from the log's start and the frames it has are left out);
`-1` asks for everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from dockrion_events import EventRecord

__all__ = ["STREAM_MODES", "LgCursor", "LgTranslator", "lg_batches"]

# The modes a client may ask for; `messages-tuple` is sent as `messages` events.
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
    }
)
_CURSOR = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,6}))?")
# Fields every stored event carries; what is left is the event's own data.
_BASE_FIELDS = ("id", "type", "run_id", "sequence", "timestamp")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class LgCursor:
    """Where a client is: everything up to stored event `sequence` (all of its frames when
    `index` is None, else its first `index + 1`)."""

    sequence: int
    index: int | None = None

    @classmethod
    def parse(cls, text: str) -> LgCursor | None:
        """`"7"` or `"7.1"` (an id of this stream); None when `text` is neither."""
        match = _CURSOR.fullmatch(text)
        if match is None:
            return None
        index = match.group(2)
        return cls(int(match.group(1)), None if index is None else int(index))

    def has(self, sequence: int, index: int) -> bool:
        """Whether the client already has frame `index` made from stored event `sequence`."""
        if sequence != self.sequence:
            return sequence < self.sequence
        return self.index is None or index <= self.index


def _chunk(content: str, message_id: str) -> dict[str, Any]:
    """An `AIMessageChunk` as LangChain serializes it (what LangGraph Server sends)."""
    return {
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": "AIMessageChunk",
        "name": None,
        "id": message_id,
        "example": False,
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": None,
        "tool_call_chunks": [],
    }


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


class LgTranslator:
    """The LangGraph stream frames of one run, fed its stored events in order: each call of
    `feed` returns `(event name, data JSON)` pairs, for every mode (the caller keeps the
    modes its client asked for)."""

    def __init__(
        self, *, run_id: str, thread_id: str | None, assistant_id: str, graph_id: str
    ) -> None:
        self.run_id = run_id
        self._meta = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "graph_id": graph_id,
        }
        self._message: dict[str, Any] | None = None  # the AI message being streamed
        self._messages = 0
        self._node: str | None = None
        self._node_meta: str = ""
        self._states = False  # the log has the state after each step

    def _message_id(self, given: str | None, node: str | None) -> str:
        current = self._message
        if given is not None:
            if current is not None and current["id"] == given:
                return given
        elif current is not None and node == self._node:
            return str(current["id"])
        self._messages += 1
        return given or f"run-{self.run_id}-{self._messages}"

    def _node_metadata(self, node: str | None) -> str:
        if node != self._node or not self._node_meta:
            self._node = node
            self._node_meta = _dumps({**self._meta, "langgraph_node": node})
        return self._node_meta

    def _end_message(self, out: list[tuple[str, str]]) -> None:
        message = self._message
        if message is not None:
            self._message = None
            final = {**message, "type": "ai"}
            final.pop("tool_call_chunks", None)
            out.append(("messages/complete", _dumps([final])))

    def feed(self, record: EventRecord) -> list[tuple[str, str]]:
        kind = record.type
        data = json.loads(record.data)
        out: list[tuple[str, str]] = []
        if kind == "token":
            self._token(data, out)
            return out
        self._end_message(out)
        fields = {key: value for key, value in data.items() if key not in _BASE_FIELDS}
        if kind == "started":
            out.append(("metadata", _dumps({"run_id": self.run_id, "attempt": 1})))
        elif kind == "step":
            update = fields.get("update")
            out.append(("updates", _dumps({fields.get("node_name"): update})))
        elif kind == "state":
            self._states = True
            out.append(("values", _dumps(fields.get("values"))))
        elif kind in ("progress", "checkpoint"):
            out.append(("custom", _dumps({"type": kind, **fields})))
        elif kind.startswith("custom:"):
            out.append(("custom", _dumps(custom_value(kind, fields))))
        elif kind == "complete":
            output = fields.get("output")
            waiting = output.get("__interrupt__") if isinstance(output, dict) else None
            stopped = bool(waiting)
            if stopped:
                out.append(("updates", _dumps({"__interrupt__": waiting})))
            if stopped or not self._states:  # else the last state was the final one
                out.append(("values", _dumps(output)))
        elif kind == "error":
            details = fields.get("details") or {}
            name = details.get("type") if isinstance(details, dict) else None
            error = {"error": name or fields.get("code", "Error"), "message": fields.get("error")}
            out.append(("error", _dumps(error)))
        return out

    def _token(self, data: dict[str, Any], out: list[tuple[str, str]]) -> None:
        node = data.get("node_name")
        message_id = self._message_id(data.get("message_id"), node)
        content = str(data.get("content", ""))
        chunk = _chunk(content, message_id)
        metadata = self._node_metadata(node)
        out.append(("messages", f"[{_dumps(chunk)},{metadata}]"))
        message = self._message
        if message is None or message["id"] != message_id:
            self._end_message(out)
            message = self._message = {**chunk, "content": ""}
            out.append(("messages/metadata", f'{{{_dumps(message_id)}:{{"metadata":{metadata}}}}}'))
        message["content"] += content
        out.append(("messages/partial", _dumps([message])))


def _wanted(modes: frozenset[str]) -> frozenset[str]:
    """The event names a client asking for `modes` gets."""
    names = {"metadata", "error"}
    if "messages-tuple" in modes:
        names.add("messages")
    if "messages" in modes:
        names |= {"messages/metadata", "messages/partial", "messages/complete"}
    names |= modes & {"values", "updates", "custom"}
    return frozenset(names)


def _frame(event_id: str, name: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


async def lg_batches(
    batches: AsyncIterator[list[EventRecord]],
    translator: LgTranslator,
    modes: Iterable[str],
    after: LgCursor | None,
) -> AsyncIterator[list[EventRecord]]:
    """A run's stored events from its start -> LangGraph SSE frames (as records whose
    `frame` is the LangGraph event), only those of `modes`, leaving out those the client
    has (`after`). An empty batch (the log is idle) passes through."""
    wanted = _wanted(frozenset(modes))
    try:
        async for batch in batches:
            frames: list[EventRecord] = []
            for record in batch:
                produced = translator.feed(record)
                last = len(produced) - 1
                sequence = record.sequence
                for index, (name, data) in enumerate(produced):
                    if name not in wanted or (after is not None and after.has(sequence, index)):
                        continue
                    event_id = f"{sequence}" if index == last else f"{sequence}.{index}"
                    frames.append(
                        EventRecord(sequence, name, data, frame=_frame(event_id, name, data))
                    )
            if frames or not batch:
                yield frames
    finally:
        await batches.aclose()  # type: ignore[attr-defined]

"""AG-UI: a run's events as the AG-UI protocol's events (`ag_ui_input.py` maps the other
way, AG-UI input to an agent's).

`AgUiTranslator` turns the stored events of one run, in order, into AG-UI events built
with the `ag-ui-protocol` package's models (`docs/ag-ui.md` has the table). The translation
is a pure function of the log, so replaying the log from its start always yields the same
AG-UI events: that is what makes an AG-UI stream resumable (`ag_ui_stream.py` writes it
with the ids a client resumes from).

Importing this module needs the `ag-ui` extra (`pip install 'dockrion-runtime[ag-ui]'`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    BaseEvent,
    CustomEvent,
    FunctionCall,
    Interrupt,
    Message,
    MessagesSnapshotEvent,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    SystemMessage,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCall,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    ToolMessage,
    UserMessage,
)

from dockrion_events import EventRecord

__all__ = ["AgUiTranslator"]

# Fields every stored event carries; what is left is the event's own data.
_BASE_FIELDS = ("id", "type", "run_id", "sequence", "timestamp")


class AgUiTranslator:
    """The AG-UI events of one run, fed its stored events in order."""

    def __init__(self, *, thread_id: str, run_id: str, dockrion_run_id: str, framework: str):
        self.thread_id = thread_id
        self.run_id = run_id
        self.dockrion_run_id = dockrion_run_id
        self.framework = framework
        self._text: tuple[str, str | None] | None = None  # open message id and its node
        self._turn_message: str | None = None  # the assistant message of this node turn
        self._step: str | None = None
        self._pending_calls: list[str] = []

    def feed(self, record: EventRecord) -> list[BaseEvent]:
        data = json.loads(record.data)
        kind = record.type
        fields = {key: value for key, value in data.items() if key not in _BASE_FIELDS}
        out: list[BaseEvent] = []
        sequence = record.sequence
        if kind == "started" and fields.get("attempt"):
            # a later attempt at the run (its worker died): the run goes on, not a new one
            out.append(CustomEvent(name="attempt", value={"attempt": fields["attempt"]}))
        elif kind == "started":
            out.append(
                RunStartedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    metadata={
                        "dockrion": {
                            "run_id": self.dockrion_run_id,
                            "resume_url": f"/ag-ui/runs/{self.dockrion_run_id}",
                        }
                    },
                )
            )
        elif kind == "token":
            self._token(str(fields.get("content") or ""), fields.get("node_name"), sequence, out)
        elif kind == "tool_call":
            self._tool_call(fields, sequence, out)
        elif kind == "tool_result":
            self._tool_result(fields, sequence, out)
        elif kind == "step":
            self._close_text(out)
            self._end_step(str(fields.get("node_name") or "step"), out)
        elif kind == "progress":
            out.append(CustomEvent(name="progress", value=fields))
        elif kind == "checkpoint":
            out.append(CustomEvent(name="checkpoint", value=fields))
        elif kind.startswith("custom:"):
            out.append(CustomEvent(name=kind.removeprefix("custom:"), value=fields))
        elif kind == "complete":
            self._finish(out)
            self._complete(fields, out)
        elif kind == "error":
            self._finish(out)
            message = str(fields.get("error") or "the run failed")
            out.append(RunErrorEvent(message=message, code=fields.get("code")))
        elif kind == "cancelled":
            self._finish(out)
            out.append(
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    outcome=RunFinishedCancelledOutcome(),
                    metadata={"reason": fields.get("reason")},
                )
            )
        # AG-UI's optional timestamp (ms since the epoch): when the stored event happened,
        # so a replay carries the same times as the live stream did
        stamp = _millis(data.get("timestamp"))
        for event in out:
            event.timestamp = stamp
        return out

    # --- text, tool calls, steps ------------------------------------------------------------

    def _token(self, text: str, node: Any, sequence: int, out: list[BaseEvent]) -> None:
        if not text:
            return
        node_name = str(node) if node else None
        if self._text is not None and self._text[1] != node_name:
            self._close_text(out)
        if node_name is not None:
            self._enter_step(node_name, out)
        if self._text is None:
            message_id = self._message_id(sequence)
            self._text = (message_id, node_name)
            self._turn_message = message_id
            out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
        out.append(TextMessageContentEvent(message_id=self._text[0], delta=text))

    def _tool_call(self, fields: dict[str, Any], sequence: int, out: list[BaseEvent]) -> None:
        self._close_text(out)
        node = fields.get("node_name")
        if node:
            self._enter_step(str(node), out)
        if self._turn_message is None:
            self._turn_message = self._message_id(sequence)
        call_id = str(fields.get("call_id") or f"call-{self.dockrion_run_id}-{sequence}")
        arguments = fields.get("arguments")
        self._pending_calls.append(call_id)
        out.append(
            ToolCallStartEvent(
                tool_call_id=call_id,
                tool_call_name=str(fields.get("name") or ""),
                parent_message_id=self._turn_message,
            )
        )
        delta = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        out.append(ToolCallArgsEvent(tool_call_id=call_id, delta=delta))
        out.append(ToolCallEndEvent(tool_call_id=call_id))

    def _tool_result(self, fields: dict[str, Any], sequence: int, out: list[BaseEvent]) -> None:
        self._close_text(out)
        node = fields.get("node_name")
        if node:
            self._enter_step(str(node), out)
        call_id = str(fields.get("call_id") or "")
        if call_id in self._pending_calls:
            self._pending_calls.remove(call_id)
        content = fields.get("content")
        out.append(
            ToolCallResultEvent(
                message_id=self._message_id(sequence),
                tool_call_id=call_id,
                content=content if isinstance(content, str) else json.dumps(content),
                role="tool",
                metadata={"is_error": True} if fields.get("is_error") else None,
            )
        )

    def _enter_step(self, name: str, out: list[BaseEvent]) -> None:
        if self._step == name:
            return
        if self._step is not None:
            self._close_text(out)
            out.append(StepFinishedEvent(step_name=self._step))
            self._turn_message = None
        self._step = name
        out.append(StepStartedEvent(step_name=name))

    def _end_step(self, name: str, out: list[BaseEvent]) -> None:
        """A node finished: its step closes (opened now when nothing it did came first)."""
        self._enter_step(name, out)
        out.append(StepFinishedEvent(step_name=name))
        self._step = None
        self._turn_message = None

    def _close_text(self, out: list[BaseEvent]) -> None:
        if self._text is not None:
            out.append(TextMessageEndEvent(message_id=self._text[0]))
            self._text = None

    def _finish(self, out: list[BaseEvent]) -> None:
        self._close_text(out)
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=self._step))
            self._step = None

    def _message_id(self, sequence: int) -> str:
        return f"msg-{self.dockrion_run_id}-{sequence}"

    # --- the end ----------------------------------------------------------------------------

    def _complete(self, fields: dict[str, Any], out: list[BaseEvent]) -> None:
        output = fields.get("output")
        metadata = fields.get("metadata") or {}
        state = output if isinstance(output, dict) else None
        if self.framework == "langgraph" and state is not None:
            # The graph's state without its messages (they are the text and tool events).
            snapshot = {
                key: value
                for key, value in state.items()
                if key not in ("messages", "__interrupt__")
            }
            out.append(StateSnapshotEvent(snapshot=snapshot))
            messages = _ag_ui_messages(state.get("messages"))
            if messages is not None:
                out.append(MessagesSnapshotEvent(messages=messages))
        usage = _usage(metadata.get("usage"))
        interrupts = state.get("__interrupt__") if state is not None else None
        if interrupts:
            for item in interrupts:
                value = item.get("value") if isinstance(item, dict) else item
                out.append(CustomEvent(name="on_interrupt", value=value))
            out.append(
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    outcome=RunFinishedInterruptOutcome(
                        interrupts=[self._interrupt(item, i) for i, item in enumerate(interrupts)]
                    ),
                    usage=usage,
                )
            )
            return
        # A graph's output is its state: the snapshot above and the streamed messages.
        result = None if self.framework == "langgraph" else output
        out.append(
            RunFinishedEvent(
                thread_id=self.thread_id, run_id=self.run_id, result=result, usage=usage
            )
        )

    def _interrupt(self, item: Any, index: int) -> Interrupt:
        """One of LangGraph's `__interrupt__` entries (`id`, `value`) as AG-UI's."""
        entry = item if isinstance(item, dict) else {"value": item}
        value = entry.get("value")
        message = value if isinstance(value, str) else None
        if isinstance(value, dict):
            text = value.get("question") or value.get("message")
            message = text if isinstance(text, str) else None
        schema = entry.get("response_schema")
        return Interrupt(
            id=str(entry.get("id") or f"interrupt-{self.dockrion_run_id}-{index}"),
            reason="interrupt",
            message=message,
            # A run stopped inside a tool (an approval) leaves that one call unanswered.
            tool_call_id=self._pending_calls[0] if len(self._pending_calls) == 1 else None,
            response_schema=schema if isinstance(schema, dict) else None,
            metadata={"value": value},
        )


def _ag_ui_messages(messages: Any) -> list[Message] | None:
    """A graph's `messages` (LangChain messages as the run log stores them) as AG-UI
    messages, ids kept; None unless every one is a text message of a known kind (a snapshot
    replaces the client's list, so a partial one would lose messages)."""
    if not isinstance(messages, list):
        return None
    converted: list[Message] = []
    for message in messages:
        kind = message.get("type") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not message.get("id"):
            return None
        ident = str(message["id"])
        if kind == "human":
            converted.append(UserMessage(id=ident, content=content))
        elif kind == "system":
            converted.append(SystemMessage(id=ident, content=content))
        elif kind == "tool":
            call_id = str(message.get("tool_call_id") or "")
            converted.append(ToolMessage(id=ident, content=content, tool_call_id=call_id))
        elif kind == "ai":
            calls = message.get("tool_calls") or []
            if not all(isinstance(call, dict) for call in calls):
                return None
            tool_calls = [
                ToolCall(
                    id=str(call.get("id")),
                    type="function",
                    function=FunctionCall(
                        name=str(call.get("name")), arguments=json.dumps(call.get("args") or {})
                    ),
                )
                for call in calls
            ]
            converted.append(
                AssistantMessage(id=ident, content=content or None, tool_calls=tool_calls or None)
            )
        else:
            return None
    return converted


def _millis(timestamp: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(timestamp)).timestamp() * 1000)
    except ValueError:
        return None


def _usage(usage: Any) -> list[TokenUsage] | None:
    if not isinstance(usage, dict):
        return None
    return [
        TokenUsage(
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            total_tokens=usage.get("total_tokens"),
        )
    ]

"""AG-UI input as an agent's input: `RunAgentInput` (messages, state, tools, context,
forwardedProps, resume) -> what a LangGraph graph or a handler receives (`docs/ag-ui.md`
has the table).

Importing this module needs the `ag-ui` extra (`pip install 'dockrion-runtime[ag-ui]'`).
"""

from __future__ import annotations

import json
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    DeveloperMessage,
    RunAgentInput,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

__all__ = [
    "InputRefused",
    "RunAgentInput",
    "graph_input",
    "graph_tools",
    "handler_input",
    "last_user_text",
    "resume_value",
]


def _text(content: Any) -> str:
    """A message's content as text: a string as is, the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.text for part in content if isinstance(part, TextPart))
    return ""


def _langchain_message(message: Any) -> dict[str, Any] | None:
    """An AG-UI message in the dict form LangChain turns into its messages (None for kinds
    a model never reads: activity and reasoning messages)."""
    if isinstance(message, UserMessage):
        content = message.content
        if isinstance(content, list) and not all(isinstance(p, TextPart) for p in content):
            parts: Any = [part.model_dump(by_alias=True) for part in content]
        else:
            parts = _text(content)
        return {"role": "user", "content": parts, "id": message.id}
    if isinstance(message, AssistantMessage):
        result: dict[str, Any] = {
            "role": "assistant",
            "content": message.content or "",
            "id": message.id,
        }
        if message.tool_calls:
            result["tool_calls"] = [
                {"id": call.id, "name": call.function.name, "args": _arguments(call)}
                for call in message.tool_calls
            ]
        return result
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "content": _text(message.content),
            "tool_call_id": message.tool_call_id,
            "id": message.id,
        }
    if isinstance(message, SystemMessage | DeveloperMessage):
        return {"role": "system", "content": message.content, "id": message.id}
    return None


def _arguments(call: Any) -> Any:
    try:
        return json.loads(call.function.arguments or "{}")
    except ValueError:
        return {"arguments": call.function.arguments}


class InputRefused(ValueError):
    """Front-end tools or context the agent has no place for: sent back as a 400 naming
    the field, never accepted and dropped."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _tools(run_input: RunAgentInput) -> list[dict[str, Any]]:
    """AG-UI's tools as JSON (`name`, `description`, `parameters`): the function form
    LangChain's `bind_tools` takes as is."""
    return [
        tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        for tool in run_input.tools or ()
    ]


def _context(run_input: RunAgentInput) -> list[dict[str, Any]]:
    return [
        item.model_dump(mode="json", by_alias=True, exclude_none=True)
        for item in run_input.context or ()
    ]


def graph_input(
    run_input: RunAgentInput, *, keeps_threads: bool, state_keys: frozenset[str] | None
) -> dict[str, Any]:
    """A LangGraph graph's input: `state` (an object) with `messages` in LangChain's dict
    form, and the front end's tools and context (`graph_tools`). A graph that keeps threads
    already holds the earlier turns in its checkpointer, so it gets only the new turn: the
    messages after the last assistant message."""
    messages = list(run_input.messages)
    if keeps_threads:
        last = max(
            (i for i, m in enumerate(messages) if isinstance(m, AssistantMessage)), default=-1
        )
        messages = messages[last + 1 :]
    state = run_input.state if isinstance(run_input.state, dict) else {}
    converted = [m for m in map(_langchain_message, messages) if m is not None]
    return {**state, "messages": converted, **graph_tools(run_input, state_keys)}


def graph_tools(
    run_input: RunAgentInput, state_keys: frozenset[str] | None, *, resuming: bool = False
) -> dict[str, Any]:
    """The state keys that carry the front end's `tools` and `context`, by LangGraph's AG-UI
    convention: `tools` in `tools`, both in `ag-ui` (`{"tools": [...], "context": [...]}`),
    each key when the graph's state declares it (`state_keys`; None: a graph that takes its
    input whole gets both). LangGraph drops input keys its state does not declare, so tools
    or context the graph has no key for are refused (`InputRefused`) instead. A resumed
    graph gets them as a state update, which a graph without state keys cannot take."""
    tools, context = _tools(run_input), _context(run_input)
    if state_keys is None:
        if not resuming:
            return {"tools": tools, "ag-ui": {"tools": tools, "context": context}}
        if tools or context:
            raise InputRefused(
                "tools" if tools else "context",
                "A graph without state keys (LangGraph's functional API) takes no state "
                "update when it resumes, so it cannot receive the front end's tools or "
                "context then: send none with a resume",
            )
        return {}
    keys: dict[str, Any] = {}
    if "tools" in state_keys:
        keys["tools"] = tools
    if "ag-ui" in state_keys:
        keys["ag-ui"] = {"tools": tools, "context": context}
        return keys
    if tools and "tools" not in state_keys:
        raise InputRefused(
            "tools",
            "The graph's state declares neither 'tools' nor 'ag-ui', so it cannot receive "
            "the front end's tools: declare one of them, or send no tools",
        )
    if context:
        raise InputRefused(
            "context",
            "The graph's state does not declare 'ag-ui', so it cannot receive the front "
            "end's context: declare it ({'tools': [...], 'context': [...]}), or send none",
        )
    return keys


def last_user_text(run_input: RunAgentInput) -> str | None:
    for message in reversed(run_input.messages):
        if isinstance(message, UserMessage):
            return _text(message.content)
    return None


def handler_input(run_input: RunAgentInput, message_field: str) -> dict[str, Any]:
    """A handler's input: `forwardedProps` (an object), with the text of the last user
    message in `message_field` (left out when there is no user message), and front-end
    `tools` and `context` in `ag-ui` (`{"tools": [...], "context": [...]}`) when the client
    sent either: checked against `io_schema.input` like the rest of the payload."""
    props = run_input.forwarded_props if isinstance(run_input.forwarded_props, dict) else {}
    payload = dict(props)
    text = last_user_text(run_input)
    if text is not None:
        payload[message_field] = text
    if run_input.tools or run_input.context:
        payload["ag-ui"] = {"tools": _tools(run_input), "context": _context(run_input)}
    return payload


def resume_value(run_input: RunAgentInput) -> tuple[bool, Any]:
    """Whether the input resumes an interrupted graph, and with what value: AG-UI's `resume`
    entries (one entry: its payload; several: payloads by interrupt id), else LangGraph's
    AG-UI convention `forwardedProps.command.resume`."""
    if run_input.resume:
        entries = run_input.resume
        if len(entries) == 1:
            return True, entries[0].payload
        return True, {entry.interrupt_id: entry.payload for entry in entries}
    props = run_input.forwarded_props
    command = props.get("command") if isinstance(props, dict) else None
    if isinstance(command, dict) and "resume" in command:
        return True, command["resume"]
    return False, None

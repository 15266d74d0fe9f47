"""What the operations of several endpoint families share: the error, JSON and
Server-Sent Events responses, the refusals of a JSON body, the run id, the agent's input
body and the thread parameters."""

from __future__ import annotations

from typing import Any

from dockrion_events.runs import RUN_ID_PATTERN
from dockrion_schema import DockSpec

from ...endpoints.run_access import MAX_SUBSCRIPTION_TIMEOUT
from ...engine.conversations import THREAD_ID_PATTERN
from ...engine.thread_turns import MULTITASK_STRATEGIES

__all__ = [
    "BODY_ERRORS",
    "RUN_ID_PARAMETER",
    "RUN_ID_SCHEMA",
    "SSE_EVENT",
    "TIMEOUT_PARAMETER",
    "error_response",
    "input_body",
    "json_response",
    "sse_response",
    "thread_parameters",
]

# `?timeout=` of every subscription (SSE and AG-UI alike).
TIMEOUT_PARAMETER: dict[str, Any] = {
    "name": "timeout",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SUBSCRIPTION_TIMEOUT},
    "description": "Seconds before the subscription ends (the run goes on)",
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def sse_response(description: str) -> dict[str, Any]:
    return {
        "description": description
        + ". Server-Sent Events: a `retry:` line first, then one frame per stored event "
        "(`id: <sequence>`, `event: <type>`, `data: <the event as JSON>`), `: keep-alive` "
        "comments while idle, and the stream closes after the terminal event "
        "(complete, error or cancelled).",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }


# One Server-Sent Event as a client's parser sees it (the schema applies to each event).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event's sequence; absent on heartbeat events",
        },
        "event": {"type": "string", "description": "The event type, equal to data.type"},
        "data": {"type": "string", "description": "The event as compact JSON"},
        "retry": {"type": "integer", "description": "Reconnection delay (ms), first event"},
    },
}


def json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


# Every endpoint that reads a JSON body refuses it the same ways.
BODY_ERRORS = {
    "400": error_response("Invalid JSON or input that does not match the input schema"),
    "408": error_response("Body not received within arguments.body_timeout_sec"),
    "413": error_response("Body over arguments.max_body_bytes"),
    "415": error_response("Content-Type is not JSON in UTF-8"),
}
RUN_ID_SCHEMA = {"type": "string", "pattern": RUN_ID_PATTERN.pattern, "maxLength": 128}


def _default_strategy(spec: DockSpec) -> str:
    return spec.threads.multitask_strategy if spec.threads is not None else "enqueue"


RUN_ID_PARAMETER: dict[str, Any] = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": RUN_ID_SCHEMA,
    "description": "The run id `POST /runs` returned",
}


def input_body(prefix: str) -> dict[str, Any]:
    """The agent's input, `prefix` beginning the name of its model."""
    return {
        "required": True,
        "description": "Agent input payload",
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{prefix}Input"}}
        },
    }


def thread_parameters(spec: DockSpec) -> list[dict[str, Any]]:
    """`?thread_id=` and `?multitask_strategy=` of the endpoints that start a run."""
    thread = {
        "name": "thread_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": THREAD_ID_PATTERN.pattern, "maxLength": 128},
        "description": "Continue this conversation thread (the agent's own memory, e.g. a "
        "LangGraph checkpointer). A thread belongs to the caller that used it first.",
    }
    multitask = {
        "name": "multitask_strategy",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(MULTITASK_STRATEGIES)},
        "description": "When another run holds the thread: enqueue (wait in line, in order), "
        "reject (409 THREAD_BUSY), interrupt (cancel the thread's runs, keep their progress) "
        "or rollback (cancel them, remove their checkpoints). "
        f"Default: {_default_strategy(spec)}.",
    }
    return [thread, multitask]

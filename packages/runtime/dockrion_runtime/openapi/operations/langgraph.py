"""The LangGraph Server API's operations (endpoints/lg_*.py), under the Dockfile's prefix:
the shapes LangGraph's clients send and read."""

from __future__ import annotations

from typing import Any

from ...engine.conversations import THREAD_ID_PATTERN
from .shapes import BODY_ERRORS, RUN_ID_SCHEMA, error_response, json_response

__all__ = ["langgraph_operations"]

_THREAD = {
    "name": "thread_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": THREAD_ID_PATTERN.pattern},
}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": RUN_ID_SCHEMA}
_ASSISTANT = {
    "name": "assistant_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
    "description": "The agent's name, or the UUID derived from it",
}
_RUN_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["assistant_id"],
                "properties": {
                    "assistant_id": {"type": "string"},
                    "input": {"description": "The agent's input (io_schema.input)"},
                    "command": {
                        "type": "object",
                        "properties": {"resume": {}, "update": {"type": "object"}},
                    },
                    "stream_mode": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                    "stream_resumable": {"type": "boolean"},
                    "on_disconnect": {"type": "string", "enum": ["cancel", "continue"]},
                    "multitask_strategy": {
                        "type": "string",
                        "enum": ["reject", "enqueue", "interrupt", "rollback"],
                    },
                    "if_not_exists": {"type": "string", "enum": ["create", "reject"]},
                    "metadata": {"type": "object"},
                    "config": {"type": "object"},
                    "context": {"type": "object"},
                },
            }
        }
    },
}
_OBJECT_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_STREAM = {
    "description": "LangGraph stream parts as Server-Sent Events (`event: metadata`, "
    "`values`, `updates`, `messages`, `custom`, `error`), each with an `id:` to resume from",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
_NOT_FOUND = {"404": error_response("No such assistant, thread or run of the caller's")}
_BUSY = {"409": error_response("The thread is busy (reject) or no longer waits (resume)")}


def langgraph_operations(prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every LangGraph API operation, by `(method, path)` under `prefix`."""

    def op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "tags": ["LangGraph API"], "responses": responses, **extra}

    ok = json_response("OK")
    thread = [_THREAD]
    run = [_THREAD, _RUN]
    table: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/ok"): op("Liveness of the LangGraph API", {"200": ok}),
        ("GET", "/info"): op("Server information for LangGraph clients", {"200": ok}),
        ("POST", "/assistants/search"): op(
            "The assistants (the agent)", {"200": ok, **BODY_ERRORS}, requestBody=_OBJECT_BODY
        ),
        ("GET", "/assistants/{assistant_id}"): op(
            "The assistant", {"200": ok, **_NOT_FOUND}, parameters=[_ASSISTANT]
        ),
        ("GET", "/assistants/{assistant_id}/schemas"): op(
            "The assistant's input and output schemas",
            {"200": ok, **_NOT_FOUND},
            parameters=[_ASSISTANT],
        ),
        ("GET", "/assistants/{assistant_id}/graph"): op(
            "The graph's nodes and edges", {"200": ok, **_NOT_FOUND}, parameters=[_ASSISTANT]
        ),
        ("POST", "/threads"): op(
            "Create a thread",
            {"200": ok, "409": error_response("Thread id in use"), **BODY_ERRORS},
            requestBody=_OBJECT_BODY,
        ),
        ("POST", "/threads/search"): op(
            "The caller's threads", {"200": ok, **BODY_ERRORS}, requestBody=_OBJECT_BODY
        ),
        ("GET", "/threads/{thread_id}"): op(
            "A thread", {"200": ok, **_NOT_FOUND}, parameters=thread
        ),
        ("DELETE", "/threads/{thread_id}"): op(
            "Delete a thread",
            {"204": {"description": "Deleted"}, **_NOT_FOUND, **_BUSY},
            parameters=thread,
        ),
        ("GET", "/threads/{thread_id}/state"): op(
            "A thread's state", {"200": ok, **_NOT_FOUND}, parameters=thread
        ),
        ("POST", "/threads/{thread_id}/history"): op(
            "A thread's states, newest first",
            {"200": ok, **_NOT_FOUND, **BODY_ERRORS},
            parameters=thread,
            requestBody=_OBJECT_BODY,
        ),
        ("POST", "/threads/{thread_id}/runs/stream"): op(
            "Run on a thread, streamed",
            {"200": _STREAM, **BODY_ERRORS, **_NOT_FOUND, **_BUSY},
            parameters=thread,
            requestBody=_RUN_BODY,
        ),
        ("POST", "/threads/{thread_id}/runs/wait"): op(
            "Run on a thread, answer its final values",
            {"200": ok, **BODY_ERRORS, **_NOT_FOUND, **_BUSY},
            parameters=thread,
            requestBody=_RUN_BODY,
        ),
        ("POST", "/threads/{thread_id}/runs"): op(
            "Start a background run on a thread",
            {"200": ok, **BODY_ERRORS, **_NOT_FOUND, **_BUSY},
            parameters=thread,
            requestBody=_RUN_BODY,
        ),
        ("GET", "/threads/{thread_id}/runs"): op(
            "A thread's runs, newest first", {"200": ok, **_NOT_FOUND}, parameters=thread
        ),
        ("GET", "/threads/{thread_id}/runs/{run_id}"): op(
            "A run", {"200": ok, **_NOT_FOUND}, parameters=run
        ),
        ("GET", "/threads/{thread_id}/runs/{run_id}/stream"): op(
            "Join a run's stream (from Last-Event-ID; -1 for all)",
            {"200": _STREAM, **_NOT_FOUND, "410": error_response("The run's log expired")},
            parameters=run,
        ),
        ("GET", "/threads/{thread_id}/runs/{run_id}/join"): op(
            "Wait for a run, answer its final values",
            {"200": ok, **_NOT_FOUND},
            parameters=run,
        ),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): op(
            "Cancel a run",
            {"200": ok, **_NOT_FOUND, "409": error_response("Already ended")},
            parameters=run,
        ),
        ("POST", "/runs/stream"): op(
            "Run on no thread, streamed",
            {"200": _STREAM, **BODY_ERRORS, **_NOT_FOUND},
            requestBody=_RUN_BODY,
        ),
        ("POST", "/runs/wait"): op(
            "Run on no thread, answer its final values",
            {"200": ok, **BODY_ERRORS, **_NOT_FOUND},
            requestBody=_RUN_BODY,
        ),
    }
    return {(method, prefix + path): operation for (method, path), operation in table.items()}

"""What each endpoint does, as OpenAPI operations: its summary, parameters, request body
and every response it can give. `openapi.py` puts the ones the route table serves into
the document, with the models and the security schemes.
"""

from __future__ import annotations

from typing import Any

from dockrion_events.runs import RUN_ID_PATTERN
from dockrion_schema import DockSpec

from ..endpoints.run_access import MAX_SEQUENCE, MAX_SUBSCRIPTION_TIMEOUT
from ..endpoints.threads import MAX_LISTED
from ..engine.conversations import THREAD_ID_PATTERN
from ..engine.thread_turns import MULTITASK_STRATEGIES

__all__ = ["endpoint_operations", "error_response"]

# `?timeout=` of every subscription (SSE and AG-UI alike).
_TIMEOUT_PARAMETER: dict[str, Any] = {
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


def _sse(description: str) -> dict[str, Any]:
    return {
        "description": description
        + ". Server-Sent Events: a `retry:` line first, then one frame per stored event "
        "(`id: <sequence>`, `event: <type>`, `data: <the event as JSON>`), `: keep-alive` "
        "comments while idle, and the stream closes after the terminal event "
        "(complete, error or cancelled).",
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
    }


# One Server-Sent Event as a client's parser sees it (the schema applies to each event).
_SSE_EVENT: dict[str, Any] = {
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


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


# Every endpoint that reads a JSON body refuses it the same ways.
_BODY_ERRORS = {
    "400": error_response("Invalid JSON or input that does not match the input schema"),
    "408": error_response("Body not received within arguments.body_timeout_sec"),
    "413": error_response("Body over arguments.max_body_bytes"),
    "415": error_response("Content-Type is not JSON in UTF-8"),
}
_RUN_ID_SCHEMA = {"type": "string", "pattern": RUN_ID_PATTERN.pattern, "maxLength": 128}


def _ag_ui_operations(run_id: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    stream = {
        "description": "AG-UI events as Server-Sent Events: each `data:` line one AG-UI "
        "event (JSON), each with `id: <sequence>` or `id: <sequence>.<n>` for resuming",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    return {
        ("POST", "/ag-ui"): {
            "summary": "Run the agent for an AG-UI front end (RunAgentInput in, AG-UI out)",
            "requestBody": {
                "required": True,
                "description": "AG-UI RunAgentInput (threadId, runId, messages, ...)",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["threadId", "runId", "messages"],
                            "properties": {
                                "threadId": {"type": "string"},
                                "runId": {"type": "string"},
                                "messages": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": stream,
                **_BODY_ERRORS,
                "404": error_response("The thread belongs to another caller"),
                "503": error_response("Agent not ready, or the ag-ui extra is not installed"),
            },
        },
        ("GET", "/ag-ui/runs/{run_id}"): {
            "summary": "A run as AG-UI events: replay, then live; resumes from Last-Event-ID",
            "parameters": [
                run_id,
                {
                    "name": "from_sequence",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE},
                    "description": "First stored event to send AG-UI events of (inclusive)",
                },
                _TIMEOUT_PARAMETER,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]{1,6})?$"},
                    "description": "The last id received; wins over from_sequence",
                },
            ],
            "responses": {
                "200": stream,
                "400": error_response("Invalid run id, query parameter or Last-Event-ID"),
                "404": error_response("No run of the caller has this id"),
                "410": error_response("The run's first events are no longer kept"),
                "429": error_response("Too many subscribers on this run"),
                "503": error_response("The ag-ui extra is not installed"),
            },
        },
    }


def _default_strategy(spec: DockSpec) -> str:
    return spec.threads.multitask_strategy if spec.threads is not None else "enqueue"


_PAGE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "description": "Runs in the page",
    },
    {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LISTED, "default": 0},
        "description": "Runs skipped (next_offset of the previous page)",
    },
]

_RUN_PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["runs", "limit", "offset", "next_offset"],
    "properties": {
        "runs": {"type": "array", "items": {"type": "object"}},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "next_offset": {"type": "integer", "nullable": True},
    },
}


def _thread_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """The run listing and the thread resources (endpoints/threads.py)."""
    thread_schema = {"type": "string", "pattern": THREAD_ID_PATTERN.pattern, "maxLength": 128}
    path_thread = {
        "name": "thread_id",
        "in": "path",
        "required": True,
        "schema": thread_schema,
        "description": "The conversation thread (`?thread_id=` of its runs)",
    }
    missing = error_response("No thread of the caller has this id")
    return {
        ("GET", "/runs"): {
            "summary": "The caller's runs, newest first, a page at a time",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["ACCEPTED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"],
                    },
                    "description": "Only runs with this status",
                },
                {
                    "name": "thread_id",
                    "in": "query",
                    "schema": thread_schema,
                    "description": "Only runs on this thread",
                },
                *_PAGE_PARAMETERS,
            ],
            "responses": {
                "200": _json("A page of runs (each as GET /runs/{run_id})", _RUN_PAGE),
                "400": error_response("Invalid status, thread id, limit or offset"),
            },
        },
        ("GET", "/threads/{thread_id}"): {
            "summary": "A thread: its status, latest values, times and metadata",
            "parameters": [path_thread],
            "responses": {
                "200": _json(
                    "The thread",
                    {
                        "type": "object",
                        "required": ["thread_id", "status", "values", "metadata"],
                        "properties": {
                            "thread_id": {"type": "string"},
                            "status": {
                                "type": "string",
                                "enum": ["idle", "busy", "interrupted", "error"],
                            },
                            "values": {},
                            "created_at": {"type": "string", "nullable": True},
                            "updated_at": {"type": "string", "nullable": True},
                            "metadata": {"type": "object"},
                        },
                    },
                ),
                "400": error_response("Invalid thread id"),
                "404": missing,
            },
        },
        ("GET", "/threads/{thread_id}/runs"): {
            "summary": "The thread's runs, newest first, a page at a time",
            "parameters": [path_thread, *_PAGE_PARAMETERS],
            "responses": {
                "200": _json("A page of runs", _RUN_PAGE),
                "400": error_response("Invalid thread id, limit or offset"),
                "404": error_response("The thread belongs to another caller"),
            },
        },
        ("DELETE", "/threads/{thread_id}"): {
            "summary": "Delete a thread: its checkpoints, its runs and its ownership",
            "parameters": [path_thread],
            "responses": {
                "200": _json("Deleted"),
                "400": error_response("Invalid thread id"),
                "404": error_response("The thread belongs to another caller"),
                "409": error_response("THREAD_BUSY: a run holds the thread"),
            },
        },
    }


def endpoint_operations(spec: DockSpec, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation the runtime can serve, by `(method, path)`; `prefix` begins the names
    of the agent's input and output models."""
    body = {
        "required": True,
        "description": "Agent input payload",
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{prefix}Input"}}
        },
    }
    run_id = {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": _RUN_ID_SCHEMA,
        "description": "The run id `POST /runs` returned",
    }
    bad_run_id = error_response("Not a valid run id")
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
    thread_errors = {
        "400": error_response("Invalid input or thread id, or an agent that keeps no threads"),
        "404": error_response("The thread belongs to another caller"),
        "409": error_response("THREAD_BUSY: another run holds the thread (reject)"),
    }
    operations: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/health"): {
            "summary": "Liveness",
            "responses": {"200": _json("Alive")},
        },
        ("GET", "/ready"): {
            "summary": "Readiness",
            "responses": {
                "200": _json("Ready"),
                "503": _json("Agent not loaded or events backend not answering"),
            },
        },
        ("GET", "/info"): {
            "summary": "Agent information",
            "responses": {"200": _json("Info")},
        },
        ("GET", "/schema"): {
            "summary": "Input and output schemas",
            "responses": {"200": _json("Schemas")},
        },
        ("GET", "/metrics"): {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
        ("POST", "/invoke"): {
            "summary": "Run the agent and return its output",
            "parameters": [thread, multitask],
            "requestBody": body,
            "responses": {
                "200": {
                    "description": "Output",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{prefix}InvokeResponse"}
                        }
                    },
                },
                **_BODY_ERRORS,
                **thread_errors,
                "500": error_response("Agent error"),
                "503": error_response("Agent not ready"),
                "504": error_response("Timed out"),
            },
        },
        ("POST", "/invoke/stream"): {
            "summary": "Run the agent and stream its events (Server-Sent Events)",
            "parameters": [thread, multitask],
            "requestBody": body,
            "responses": {
                "200": _sse("started, the agent's events, then complete, error or cancelled"),
                **_BODY_ERRORS,
                **thread_errors,
                "503": error_response("Agent not ready"),
            },
        },
        ("POST", "/runs"): {
            "summary": "Start a background run",
            "parameters": [
                {
                    "name": "run_id",
                    "in": "query",
                    "required": False,
                    "schema": {**_RUN_ID_SCHEMA, "minLength": 1},
                    "description": "Client-chosen id (when streaming.allow_client_ids): the "
                    "run's id exactly. An id any run holds is 409 CONFLICT, whoever holds it; "
                    "choose unguessable ids (UUIDs).",
                },
                thread,
                multitask,
            ],
            "requestBody": body,
            "responses": {
                "202": _json(
                    "Accepted",
                    {
                        "type": "object",
                        "required": ["run_id", "status", "events_url", "created_at"],
                        "properties": {
                            "run_id": _RUN_ID_SCHEMA,
                            "status": {"type": "string"},
                            "events_url": {"type": "string"},
                            "created_at": {"type": "string"},
                        },
                    },
                ),
                **_BODY_ERRORS,
                "400": error_response(
                    "Invalid input, run id or thread id, or client run ids not allowed"
                ),
                "404": error_response("The thread belongs to another caller"),
                "409": error_response(
                    "The run id is in use (whoever created it), or THREAD_BUSY: another run "
                    "holds the thread (reject)"
                ),
                "503": error_response("Agent not ready, or the events backend cannot take a run"),
            },
        },
        ("GET", "/runs/{run_id}"): {
            "summary": "Status and result of a run",
            "parameters": [run_id],
            "responses": {
                "200": _json("The run"),
                "400": bad_run_id,
                "404": error_response("No run of the caller has this id"),
            },
        },
        ("GET", "/runs/{run_id}/events"): {
            "summary": "The run's events: replay, then live (Server-Sent Events)",
            "parameters": [
                run_id,
                {
                    "name": "from_sequence",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE},
                    "description": "First sequence to send (inclusive)",
                },
                _TIMEOUT_PARAMETER,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    "description": "The last sequence received; wins over from_sequence",
                },
            ],
            "responses": {
                "200": _sse("Stored events from the cursor, then live ones"),
                "400": error_response("Invalid run id, query parameter or Last-Event-ID"),
                "404": error_response("No run of the caller has this id"),
                "410": error_response("Events before the first one still kept were asked for"),
                "429": error_response("Too many subscribers on this run"),
            },
        },
        ("POST", "/runs/{run_id}/resume"): {
            "summary": "Resume a run that stopped at an interrupt: a new run on its thread",
            "parameters": [run_id],
            "requestBody": {
                "required": True,
                "description": "The value the interrupt waits for (any JSON)",
                "content": {"application/json": {"schema": {}}},
            },
            "responses": {
                "202": _json("Accepted: the new run"),
                **_BODY_ERRORS,
                "400": error_response("Invalid run id or body"),
                "404": error_response("No run of the caller has this id"),
                "409": error_response(
                    "The run did not stop at an interrupt, or its interrupt was already answered"
                ),
                "503": error_response("Agent not ready, or the events backend cannot take a run"),
            },
        },
        **_thread_operations(),
        **_ag_ui_operations(run_id),
        ("DELETE", "/runs/{run_id}"): {
            "summary": "Cancel a run (stops the agent)",
            "parameters": [run_id, {"name": "reason", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _json("Cancelled"),
                "400": error_response("Invalid run id"),
                "404": error_response("No run of the caller has this id"),
                "409": error_response("The run already finished: nothing to cancel"),
            },
        },
    }
    ag_ui = spec.expose.ag_ui
    if ag_ui is not None and ag_ui.enabled:
        events = operations[("GET", "/runs/{run_id}/events")]
        events["parameters"] = [
            *events["parameters"],
            {
                "name": "format",
                "in": "query",
                "schema": {"type": "string", "enum": ["ag-ui"]},
                "description": "ag-ui: the run as AG-UI events, as GET /ag-ui/runs/{run_id}",
            },
        ]
    return operations

"""The run endpoints' operations: start a run, read it, follow its events, resume it and
cancel it."""

from __future__ import annotations

from typing import Any

from dockrion_schema import DockSpec

from ...endpoints.run_access import MAX_SEQUENCE
from .shapes import (
    BODY_ERRORS,
    RUN_ID_PARAMETER,
    RUN_ID_SCHEMA,
    TIMEOUT_PARAMETER,
    error_response,
    input_body,
    json_response,
    sse_response,
    thread_parameters,
)

__all__ = ["run_operations"]


def run_operations(spec: DockSpec, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The background runs (endpoints/runs.py)."""
    body = input_body(prefix)
    thread, multitask = thread_parameters(spec)
    run_id = RUN_ID_PARAMETER
    bad_run_id = error_response("Not a valid run id")
    operations: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/runs"): {
            "summary": "Start a background run",
            "parameters": [
                {
                    "name": "run_id",
                    "in": "query",
                    "required": False,
                    "schema": {**RUN_ID_SCHEMA, "minLength": 1},
                    "description": "Client-chosen id (when streaming.allow_client_ids): the "
                    "run's id exactly. An id any run holds is 409 CONFLICT, whoever holds it; "
                    "choose unguessable ids (UUIDs).",
                },
                thread,
                multitask,
            ],
            "requestBody": body,
            "responses": {
                "202": json_response(
                    "Accepted",
                    {
                        "type": "object",
                        "required": ["run_id", "status", "events_url", "created_at"],
                        "properties": {
                            "run_id": RUN_ID_SCHEMA,
                            "status": {"type": "string"},
                            "events_url": {"type": "string"},
                            "created_at": {"type": "string"},
                        },
                    },
                ),
                **BODY_ERRORS,
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
                "200": json_response("The run"),
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
                TIMEOUT_PARAMETER,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    "description": "The last sequence received; wins over from_sequence",
                },
            ],
            "responses": {
                "200": sse_response("Stored events from the cursor, then live ones"),
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
                "202": json_response("Accepted: the new run"),
                **BODY_ERRORS,
                "400": error_response("Invalid run id or body"),
                "404": error_response("No run of the caller has this id"),
                "409": error_response(
                    "The run did not stop at an interrupt, or its interrupt was already answered"
                ),
                "503": error_response("Agent not ready, or the events backend cannot take a run"),
            },
        },
        ("DELETE", "/runs/{run_id}"): {
            "summary": "Cancel a run (stops the agent)",
            "parameters": [run_id, {"name": "reason", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": json_response("Cancelled"),
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

"""The AG-UI endpoints' operations: a run for an AG-UI front end, and a run's events as
AG-UI events."""

from __future__ import annotations

from typing import Any

from ...endpoints.run_access import MAX_SEQUENCE
from .shapes import BODY_ERRORS, RUN_ID_PARAMETER, TIMEOUT_PARAMETER, error_response

__all__ = ["ag_ui_operations"]


def ag_ui_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """The AG-UI endpoints (endpoints/ag_ui.py)."""
    run_id = RUN_ID_PARAMETER
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
                **BODY_ERRORS,
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
                TIMEOUT_PARAMETER,
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

"""The run listing's and the thread resources' operations."""

from __future__ import annotations

from typing import Any

from ...endpoints.threads import MAX_LISTED
from ...engine.conversations import THREAD_ID_PATTERN
from .shapes import error_response, json_response

__all__ = ["thread_operations"]

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
        "description": "Runs skipped (next_offset of the previous page); runs created "
        "meanwhile move the pages, which cursor does not",
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {
            "type": "string",
            "pattern": r"^[0-9]{1,20}\.[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$",
            "maxLength": 149,
        },
        "description": "Where the page starts: next_cursor of the previous page (stable while "
        "runs are created)",
    },
]

_RUN_PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["runs", "limit", "offset", "next_offset", "next_cursor"],
    "properties": {
        "runs": {"type": "array", "items": {"type": "object"}},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "next_offset": {"type": "integer", "nullable": True},
        "next_cursor": {"type": "string", "nullable": True},
    },
}


def thread_operations() -> dict[tuple[str, str], dict[str, Any]]:
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
                "200": json_response("A page of runs (each as GET /runs/{run_id})", _RUN_PAGE),
                "400": error_response("Invalid status, thread id, limit, offset or cursor"),
            },
        },
        ("GET", "/threads/{thread_id}"): {
            "summary": "A thread: its status, latest values, times and metadata",
            "parameters": [path_thread],
            "responses": {
                "200": json_response(
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
                "200": json_response("A page of runs", _RUN_PAGE),
                "400": error_response("Invalid thread id, limit, offset or cursor"),
                "404": error_response("The thread belongs to another caller"),
            },
        },
        ("DELETE", "/threads/{thread_id}"): {
            "summary": "Delete a thread: its checkpoints, its runs and its ownership",
            "parameters": [path_thread],
            "responses": {
                "200": json_response("Deleted"),
                "400": error_response("Invalid thread id"),
                "404": error_response("The thread belongs to another caller"),
                "409": error_response("THREAD_BUSY: a run holds the thread"),
            },
        },
    }

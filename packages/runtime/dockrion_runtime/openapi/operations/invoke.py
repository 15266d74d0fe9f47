"""The invoke endpoints' operations: a run answered whole, or streamed."""

from __future__ import annotations

from typing import Any

from dockrion_schema import DockSpec

from .shapes import BODY_ERRORS, error_response, input_body, sse_response, thread_parameters

__all__ = ["invoke_operations"]


def invoke_operations(spec: DockSpec, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """`POST /invoke` and `POST /invoke/stream` (endpoints/invoke.py)."""
    body = input_body(prefix)
    thread, multitask = thread_parameters(spec)
    thread_errors = {
        "400": error_response("Invalid input or thread id, or an agent that keeps no threads"),
        "404": error_response("The thread belongs to another caller"),
        "409": error_response("THREAD_BUSY: another run holds the thread (reject)"),
    }
    return {
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
                **BODY_ERRORS,
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
                "200": sse_response(
                    "started, the agent's events, then complete, error or cancelled"
                ),
                **BODY_ERRORS,
                **thread_errors,
                "503": error_response("Agent not ready"),
            },
        },
    }

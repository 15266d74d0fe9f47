"""The MCP endpoint's operations (at `expose.mcp.path`): JSON-RPC messages in, JSON or a
call's Server-Sent Events stream out, a stream resumed by event id, a session ended."""

from __future__ import annotations

from typing import Any

from dockrion_schema import DockSpec, McpConfig

from .shapes import BODY_ERRORS, error_response, json_response

__all__ = ["mcp_operations"]

_RPC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jsonrpc", "error"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
    },
}
# A refusal of the transport is a JSON-RPC error; one of the request (its body, auth) is the
# runtime's error body, as on every route.
_REFUSAL = json_response(
    "A JSON-RPC error (no id when the message could not be read), or the runtime's error",
    {"anyOf": [_RPC_ERROR_SCHEMA, {"$ref": "#/components/schemas/ErrorResponse"}]},
)
_SESSION = {
    "name": "Mcp-Session-Id",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
    "description": "The session `initialize` opened: every request after it needs it (400 "
    "without, 404 for a session that is not open); `initialize` itself ignores it",
}
_VERSION = {
    "name": "MCP-Protocol-Version",
    "in": "header",
    "schema": {"type": "string", "enum": ["2025-03-26", "2025-06-18", "2025-11-25"]},
    "description": "The revision the session negotiated",
}
_STREAM: dict[str, Any] = {
    "description": "A call's messages as Server-Sent Events: an event of no data first, "
    "progress notifications, then the JSON-RPC answer; each with `id: <run_id>/<sequence>`",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def mcp_operations(spec: DockSpec) -> dict[tuple[str, str], dict[str, Any]]:
    """The MCP endpoint (endpoints/mcp.py), at the Dockfile's path."""
    path = (spec.expose.mcp or McpConfig()).path
    session_errors = {"400": _REFUSAL, "403": _REFUSAL, "404": _REFUSAL}
    return {
        ("POST", path): {
            "summary": "MCP (Streamable HTTP): one JSON-RPC message (initialize, ping, "
            "tools/list, tools/call, notifications)",
            "parameters": [_SESSION, _VERSION],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["jsonrpc"],
                            "properties": {
                                "jsonrpc": {"type": "string", "enum": ["2.0"]},
                                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                                "method": {"type": "string"},
                                "params": {"type": "object"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The JSON-RPC answer as JSON (initialize sets "
                    "Mcp-Session-Id), or a tools/call's stream",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        **_STREAM["content"],
                    },
                },
                "202": {"description": "A notification or a response, accepted"},
                **BODY_ERRORS,
                **session_errors,
                "503": error_response("Agent not ready, or the mcp extra is not installed"),
            },
        },
        ("GET", path): {
            "summary": "MCP: the rest of a call's stream after Last-Event-ID, from the run log",
            "parameters": [
                _SESSION,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": 160},
                    "description": "The last event id the client saw: `<run_id>/<sequence>`",
                },
            ],
            "responses": {
                "200": _STREAM,
                "405": {"description": "No Last-Event-ID: no stream of server requests"},
                **session_errors,
                "410": error_response("The run's log no longer starts at its first event"),
            },
        },
        ("DELETE", path): {
            "summary": "MCP: end the session (its runs go on)",
            "parameters": [_SESSION],
            "responses": {"204": {"description": "The session ended"}, **session_errors},
        },
    }

"""The A2A endpoints' operations: the agent card, and the JSON-RPC endpoint of A2A 1.0
(its methods and their messages are A2A's own; the document names them)."""

from __future__ import annotations

from typing import Any

from .shapes import error_response

__all__ = ["a2a_operations"]


def a2a_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """The A2A endpoints (endpoints/a2a_card.py, endpoints/a2a.py)."""
    return {
        ("GET", "/.well-known/agent-card.json"): {
            "summary": "The A2A agent card: skill, JSON-RPC interface, security schemes",
            "responses": {
                "200": {
                    "description": "An A2A 1.0 AgentCard",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        },
        ("POST", "/a2a"): {
            "summary": "A2A JSON-RPC: SendMessage, SendStreamingMessage, GetTask, "
            "CancelTask, SubscribeToTask",
            "requestBody": {
                "required": True,
                "description": "A JSON-RPC 2.0 request whose method is one of A2A 1.0's",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["jsonrpc", "method"],
                            "properties": {
                                "jsonrpc": {"const": "2.0"},
                                "id": {"type": ["string", "integer", "null"]},
                                "method": {"type": "string"},
                                "params": {"type": "object"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "A JSON-RPC response (a result or an error with A2A's "
                    "code), or for the streaming methods Server-Sent Events whose `data:` "
                    "lines are JSON-RPC responses carrying A2A StreamResponse objects",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "413": error_response("Body over arguments.max_body_bytes"),
                "415": error_response("Content-Type is not JSON in UTF-8"),
                "429": error_response("Too many runs or streams of this caller"),
            },
        },
    }

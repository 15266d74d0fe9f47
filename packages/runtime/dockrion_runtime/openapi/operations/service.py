"""The service endpoints' operations: the probes, the agent's information and schemas,
the metrics."""

from __future__ import annotations

from typing import Any

from .shapes import json_response

__all__ = ["service_operations"]


def service_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """`/health`, `/ready`, `/info`, `/schema` and `/metrics` (endpoints/service.py)."""
    return {
        ("GET", "/health"): {
            "summary": "Liveness",
            "responses": {"200": json_response("Alive")},
        },
        ("GET", "/ready"): {
            "summary": "Readiness",
            "responses": {
                "200": json_response("Ready"),
                "503": json_response("Agent not loaded or events backend not answering"),
            },
        },
        ("GET", "/info"): {
            "summary": "Agent information",
            "responses": {"200": json_response("Info")},
        },
        ("GET", "/schema"): {
            "summary": "Input and output schemas",
            "responses": {"200": json_response("Schemas")},
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
    }

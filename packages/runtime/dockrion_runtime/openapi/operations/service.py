"""The service endpoints' operations: the probes, the agent's information and schemas,
the metrics, the caller's usage."""

from __future__ import annotations

from typing import Any

from .shapes import error_response, json_response

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
        ("GET", "/usage"): {
            "summary": "The caller's usage of one day (tokens, cost, runs) and budgets left",
            "parameters": [
                {
                    "name": "day",
                    "in": "query",
                    "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                    "description": "A UTC date (default: today)",
                },
                {
                    "name": "all",
                    "in": "query",
                    "schema": {"type": "boolean", "default": False},
                    "description": "Every caller's usage (the view_metrics permission)",
                },
            ],
            "responses": {
                "200": json_response("Usage"),
                "400": error_response("Not a date"),
                "403": error_response("Every caller's usage without view_metrics"),
            },
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

"""The OpenAPI 3.0 document of an agent's API, built from its Dockfile, and an offline
Swagger UI (assets from the swagger-ui-bundle package, no CDN)."""

from __future__ import annotations

from typing import Any

from dockrion_schema import ApiKeysConfig, DockSpec, IOSubSchema

from .payload import io_json_schema

__all__ = ["build_openapi", "docs_page", "model_prefix"]


def model_prefix(agent_name: str) -> str:
    """`my-agent` -> `My_agent` (the documented model-name rule)."""
    return agent_name.replace("-", "_").replace(".", "_").capitalize()


def _io_schema(schema: IOSubSchema | None) -> dict[str, Any]:
    if schema is None:
        return {
            "type": "object",
            "additionalProperties": True,
            "description": "Any JSON object, passed to the agent whole",
        }
    return io_json_schema(schema)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def _sse(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


def build_openapi(
    spec: DockSpec, routes: list[tuple[str, str, bool]], version: str
) -> dict[str, Any]:
    """The document for `routes`, each `(method, path, protected)`."""
    prefix = model_prefix(spec.agent.name)
    body = {
        "required": True,
        "description": "Agent input payload",
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{prefix}Input"}}
        },
    }
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    operations: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/health"): {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}},
        ("GET", "/ready"): {
            "summary": "Readiness",
            "responses": {"200": {"description": "Ready"}, "503": _error("Agent not loaded")},
        },
        ("GET", "/info"): {
            "summary": "Agent information",
            "responses": {"200": {"description": "Info"}},
        },
        ("GET", "/schema"): {
            "summary": "Input and output schemas",
            "responses": {"200": {"description": "Schemas"}},
        },
        ("GET", "/metrics"): {
            "summary": "Prometheus metrics",
            "responses": {"200": {"description": "Text exposition"}},
        },
        ("POST", "/invoke"): {
            "summary": "Run the agent and return its output",
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
                "400": _error("Invalid input"),
                "413": _error("Body too large"),
                "500": _error("Agent error"),
                "504": _error("Timed out"),
            },
        },
        ("POST", "/invoke/stream"): {
            "summary": "Run the agent and stream its events (Server-Sent Events)",
            "requestBody": body,
            "responses": {
                "200": _sse("started, the agent's events, then complete|error"),
                "400": _error("Invalid input"),
            },
        },
        ("POST", "/runs"): {
            "summary": "Start a background run",
            "parameters": [
                {
                    "name": "run_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Client-chosen id",
                }
            ],
            "requestBody": body,
            "responses": {
                "202": {"description": "Accepted"},
                "400": _error("Invalid input"),
                "409": _error("Run id taken"),
            },
        },
        ("GET", "/runs/{run_id}"): {
            "summary": "Status and result of a run",
            "parameters": [run_id],
            "responses": {"200": {"description": "The run"}, "404": _error("Unknown run")},
        },
        ("GET", "/runs/{run_id}/events"): {
            "summary": "The run's events: replay, then live (Server-Sent Events)",
            "parameters": [
                run_id,
                {
                    "name": "from_sequence",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0},
                },
                {
                    "name": "timeout",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 3600},
                },
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _sse("Stored events from the cursor, then live ones"),
                "404": _error("Unknown run"),
                "410": _error("Events expired"),
                "429": _error("Too many subscribers"),
            },
        },
        ("DELETE", "/runs/{run_id}"): {
            "summary": "Cancel a run (stops the agent)",
            "parameters": [run_id, {"name": "reason", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "Cancelled"},
                "400": _error("Already finished"),
                "404": _error("Unknown run"),
            },
        },
    }
    schemes: dict[str, Any] = {}
    security: list[dict[str, list[str]]] = []
    auth = spec.auth
    if auth is not None and auth.mode == "api_key":
        settings = auth.api_keys or ApiKeysConfig()
        schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": settings.header}
        security.append({"APIKeyHeader": []})
        if settings.allow_bearer:
            schemes["BearerAuth"] = {"type": "http", "scheme": "bearer"}
            security.append({"BearerAuth": []})
    elif auth is not None and auth.mode == "jwt":
        schemes["BearerAuth"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        security.append({"BearerAuth": []})
    paths: dict[str, dict[str, Any]] = {}
    for method, path, protected in routes:
        operation = dict(operations[(method, path)])
        if security and protected:
            operation["security"] = security
            operation["responses"] = {**operation["responses"], "401": _error("Not authenticated")}
        paths.setdefault(path, {})[method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": spec.agent.name,
            "version": version,
            "description": spec.agent.description or "Dockrion Agent",
        },
        "paths": paths,
        "components": {
            "schemas": {
                f"{prefix}Input": _io_schema(spec.io_schema.input),
                f"{prefix}Output": _io_schema(spec.io_schema.output),
                f"{prefix}InvokeResponse": {
                    "type": "object",
                    "required": ["success", "output", "metadata"],
                    "properties": {
                        "success": {"type": "boolean", "default": True},
                        "output": {"$ref": f"#/components/schemas/{prefix}Output"},
                        "metadata": {"type": "object"},
                    },
                },
                "ErrorResponse": {
                    "type": "object",
                    "required": ["success", "error", "code"],
                    "properties": {
                        "success": {"type": "boolean", "default": False},
                        "error": {"type": "string"},
                        "code": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
    if schemes:
        document["components"]["securitySchemes"] = schemes
    return document


def docs_page(title: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title} - API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body></html>"""

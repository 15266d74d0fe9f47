"""The OpenAPI 3.0 document of an agent's API, built from its Dockfile, and an offline
Swagger UI (assets from the swagger-ui-bundle package, no CDN)."""

from __future__ import annotations

from typing import Any

from dockrion_schema import ApiKeysConfig, DockSpec, IOSubSchema

from ..request.body import io_json_schema
from .operations import endpoint_operations
from .operations.shapes import error_response

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


def build_openapi(
    spec: DockSpec, routes: list[tuple[str, str, bool]], version: str
) -> dict[str, Any]:
    """The document for `routes`, each `(method, path, protected)`."""
    prefix = model_prefix(spec.agent.name)
    operations = endpoint_operations(spec, prefix)
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
    elif auth is not None and auth.mode == "oauth2":
        # opaque access tokens, checked by introspection: a bearer scheme without a format
        schemes["BearerAuth"] = {"type": "http", "scheme": "bearer"}
        security.append({"BearerAuth": []})
    paths: dict[str, dict[str, Any]] = {}
    for method, path, protected in routes:
        operation = dict(operations[(method, path)])
        if security and protected:
            operation["security"] = security
            operation["responses"] = {
                **operation["responses"],
                "401": error_response("Not authenticated"),
            }
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
                    "required": ["success", "error", "code", "details"],
                    "properties": {
                        "success": {"type": "boolean", "default": False},
                        "error": {"type": "string", "description": "What went wrong"},
                        "code": {"type": "string", "description": "Stable error code"},
                        "details": {
                            "nullable": True,
                            "description": "A list of {loc, msg} for a refused body; "
                            "an object for other errors (reason, retry_after, ...); "
                            "null when there is nothing to add",
                        },
                        "detail": {
                            "type": "object",
                            "description": "Auth, permission and rate-limit refusals "
                            "only: {message, code, error, details}, the same facts in "
                            "the auth errors' documented shape",
                        },
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

"""The "Try it" line `serve` prints: a curl of `POST /invoke/stream` with a body the agent's
`io_schema.input` accepts, so that the first command a user pastes works."""

from __future__ import annotations

import json
from typing import Any

from dockrion_schema import IOSubSchema

__all__ = ["example_payload", "try_it_command"]

GREETING = "hello from dockrion"
_DEPTH = 8  # how deep an example follows nested objects and arrays


def example_payload(schema: IOSubSchema | None) -> Any:
    """A small value `schema` accepts: its required properties (the first property when
    none is required), strings that say hello (a chat message's `role` is a user's),
    defaults, first enum values and minimums where the schema gives them. Without a schema,
    the quickstart's `{"query": ...}`."""
    if schema is None or (schema.type == "object" and not schema.properties):
        return {"query": GREETING}
    return _example(schema.model_dump(exclude_none=True), "", 0)


def try_it_command(url: str, schema: IOSubSchema | None) -> str:
    body = json.dumps(example_payload(schema)).replace("'", "'\\''")  # inside '...'
    return f"curl -N -X POST {url}/invoke/stream -H 'Content-Type: application/json' -d '{body}'"


def _example(spec: dict[str, Any], name: str, depth: int) -> Any:
    if "default" in spec:
        return spec["default"]
    if "const" in spec:
        return spec["const"]
    if spec.get("enum"):
        return spec["enum"][0]
    if spec.get("examples"):
        return spec["examples"][0]
    kind = spec.get("type", "object" if "properties" in spec else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties: dict[str, dict[str, Any]] = spec.get("properties") or {}
        if depth >= _DEPTH:
            return {}
        names = [n for n in spec.get("required", []) if n in properties] or list(properties)[:1]
        return {n: _example(properties[n], n, depth + 1) for n in names}
    if kind == "array":
        if depth >= _DEPTH:
            return []
        return [_example(spec.get("items") or {}, name, depth + 1)] * max(
            1, int(spec.get("minItems", 1))
        )
    if kind in ("integer", "number"):
        low = spec.get("minimum", spec.get("exclusiveMinimum", 0) + 1)
        return int(low) if kind == "integer" else low
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "user" if name == "role" else GREETING

"""Request bodies: size limit, JSON parsing and checking against `io_schema.input`."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from dockrion_schema import IOSubSchema

from .errors import RuntimeHTTPError

__all__ = ["check_value", "read_payload"]

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind in ("number", "integer") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PYTHON_TYPES.get(kind, (object,)))


def check_value(value: Any, schema: IOSubSchema | None) -> list[dict[str, Any]]:
    """Field-level problems of `value` against a schema, as `{"loc": [...], "msg": ...}`."""
    if schema is None:
        return []
    problems: list[dict[str, Any]] = []
    if not _type_ok(value, schema.type):
        return [{"loc": ["body"], "msg": f"must be of type {schema.type}"}]
    if schema.type != "object" or not isinstance(value, dict):
        return problems
    for name in schema.required:
        if name not in value:
            problems.append({"loc": ["body", name], "msg": "field required"})
    for name, field in schema.properties.items():
        if name not in value:
            continue
        kind = field.get("type")
        if kind is not None and not _type_ok(value[name], kind):
            problems.append({"loc": ["body", name], "msg": f"must be of type {kind}"})
        elif "enum" in field and value[name] not in field["enum"]:
            allowed = ", ".join(json.dumps(item) for item in field["enum"])
            problems.append({"loc": ["body", name], "msg": f"must be one of {allowed}"})
    extra = (schema.model_extra or {}).get("additionalProperties")
    if extra is False:
        for name in value:
            if name not in schema.properties:
                problems.append({"loc": ["body", name], "msg": "unexpected field"})
    return problems


async def read_payload(request: Request, schema: IOSubSchema | None, max_bytes: int) -> Any:
    """The JSON body, checked; raises `RuntimeHTTPError` (400 or 413) otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RuntimeHTTPError(
            413, f"Request body is over the {max_bytes} byte limit", "PAYLOAD_TOO_LARGE"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise RuntimeHTTPError(
                413, f"Request body is over the {max_bytes} byte limit", "PAYLOAD_TOO_LARGE"
            )
    if not body.strip():
        raise RuntimeHTTPError(
            400,
            "Request body must be JSON",
            "VALIDATION_ERROR",
            [{"loc": ["body"], "msg": "body is empty"}],
        )
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RuntimeHTTPError(
            400,
            "Request body is not valid JSON",
            "VALIDATION_ERROR",
            [{"loc": ["body"], "msg": str(exc)}],
        ) from None
    if schema is None and not isinstance(payload, dict):
        problems = [{"loc": ["body"], "msg": "must be a JSON object"}]
    else:
        problems = check_value(payload, schema)
    if problems:
        raise RuntimeHTTPError(400, "Input validation failed", "VALIDATION_ERROR", problems)
    return payload

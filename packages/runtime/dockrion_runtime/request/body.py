"""Request bodies: media type, size limit, strict JSON parsing and checking against
`io_schema`.

Every way a body can be wrong is a 4xx with the documented error body, never a 500: a
media type other than JSON in UTF-8 is 415; a body over `arguments.max_body_bytes` is 413;
text that is not strict JSON (RFC 8259: no NaN or Infinity, no byte-order mark, no lone
surrogates), arrays and objects nested deeper than `arguments.max_json_depth`, integers of
more than 4,300 digits (Python's own bound for turning an integer into text) and numbers
too large for a double are 400 `VALIDATION_ERROR`.

The io_schema is compiled once, at start-up, by jsonschema-rs (a full JSON Schema
implementation in Rust, about 0.15 us per check of a small object); each problem it finds
becomes `{"loc": ["body", ...path], "msg": ...}` in the documented 400 body.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jsonschema_rs
import pydantic_core
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from dockrion_schema import IOSubSchema

from ..deadline import deadline
from ..errors import RuntimeHTTPError

__all__ = [
    "MAX_INTEGER_DIGITS",
    "BodyReader",
    "SchemaChecker",
    "io_json_schema",
    "parse_content_length",
]

# The most digits an integer may have: Python refuses to turn longer ones into text.
MAX_INTEGER_DIGITS = 4300
# pydantic-core's parser stops near 200 levels on its own; our limit must stay below it so
# that the message always names ours.
DEPTH_CEILING = 200
# Only a number with a three-digit exponent or 309 digits in a row can overflow a double.
_MAY_OVERFLOW = re.compile(rb"\d[eE][+-]?\d{3}|\d{309}")
_DIGITS = re.compile(r"[0-9]{1,19}")

_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def io_json_schema(schema: IOSubSchema) -> dict[str, Any]:
    """The JSON Schema an `io_schema.input`/`output` section stands for."""
    result: dict[str, Any] = {"type": schema.type}
    if schema.description:
        result["description"] = schema.description
    if schema.properties:
        result["properties"] = schema.properties
    if schema.required:
        result["required"] = schema.required
    if schema.items:
        result["items"] = schema.items
    extra = schema.model_extra or {}
    if "additionalProperties" in extra:
        result["additionalProperties"] = extra["additionalProperties"]
    return result


def _problem(error: Any) -> list[dict[str, Any]]:
    """Our `{"loc", "msg"}` entries for one jsonschema-rs error."""
    loc: list[Any] = ["body", *error.instance_path]
    kind = error.kind
    name = kind.name
    if name == "required":
        return [{"loc": [*loc, kind.property], "msg": "field required"}]
    if name == "type":
        return [{"loc": loc, "msg": f"must be of type {' or '.join(kind.types)}"}]
    if name == "enum":
        allowed = ", ".join(json.dumps(option) for option in kind.options)
        return [{"loc": loc, "msg": f"must be one of {allowed}"}]
    if name == "additionalProperties":
        return [{"loc": [*loc, field], "msg": "unexpected field"} for field in kind.unexpected]
    return [{"loc": loc, "msg": error.message}]


class SchemaChecker:
    """Checks values against one io_schema section (None: any JSON object)."""

    def __init__(self, schema: IOSubSchema | None) -> None:
        self.schema = schema
        self._validator = jsonschema_rs.validator_for(
            io_json_schema(schema) if schema is not None else _ANY_OBJECT
        )
        self._declared = schema is not None

    def problems(self, value: Any) -> list[dict[str, Any]]:
        """Field-level problems, as `{"loc": [...], "msg": ...}`; empty when valid."""
        if self._validator.is_valid(value):
            return []
        if not self._declared:
            return [{"loc": ["body"], "msg": "must be a JSON object"}]
        problems: list[dict[str, Any]] = []
        for error in self._validator.iter_errors(value):
            if not error.instance_path and error.kind.name == "type":
                return _problem(error)  # the wrong kind of value: nothing else to say
            problems.extend(_problem(error))
        return problems


def parse_content_length(value: str | None) -> int | None:
    """The value of a `Content-Length` header: ASCII digits only (no sign, no spaces, no
    other Unicode digits), at most 19 of them; raises `RuntimeHTTPError` otherwise."""
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        raise RuntimeHTTPError("Content-Length must be a whole number of bytes", "VALIDATION_ERROR")
    return int(value)


def _media_type_problem(content_type: str | None) -> str | None:
    """Why a `Content-Type` is not JSON in UTF-8, or None. A missing header is read as
    JSON; `application/json` and any `application/*+json` are JSON; the only charset
    accepted is UTF-8."""
    if content_type is None or content_type == "application/json" or not content_type.strip():
        return None
    media_type, *params = (part.strip() for part in content_type.split(";"))
    media_type = media_type.lower()
    main, _, sub = media_type.partition("/")
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        return f"Content-Type {media_type!r} is not JSON; send 'application/json'"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                return f"charset {charset!r} is not supported; send JSON in UTF-8"
    return None


def _first_problem(value: Any, max_depth: int) -> str | None:
    """A value nested deeper than `max_depth`, or a number that overflowed to infinity."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"arrays and objects may be nested at most {max_depth} levels deep"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number is too large for a double-precision float"
    return None


class BodyReader:
    """Reads a request's JSON body within the limits and checks it against the input schema;
    raises `RuntimeHTTPError` (400, 408, 413 or 415) otherwise."""

    def __init__(
        self,
        schema: IOSubSchema | None,
        max_bytes: int,
        max_depth: int = 64,
        timeout: float | None = None,
    ) -> None:
        self.checker = SchemaChecker(schema)
        self.max_bytes = max_bytes
        self.max_depth = min(max_depth, DEPTH_CEILING)
        self.timeout = timeout

    def _too_large(self) -> RuntimeHTTPError:
        return RuntimeHTTPError(
            f"Request body is over the {self.max_bytes} byte limit", "PAYLOAD_TOO_LARGE"
        )

    async def read(self, request: Request, *, check: bool = True) -> Any:
        """The body's JSON, checked against the input schema unless `check` is false (a
        body that is not the agent's input, such as a resume value)."""
        problem = _media_type_problem(request.headers.get("content-type"))
        if problem is not None:
            raise RuntimeHTTPError(problem, "UNSUPPORTED_MEDIA_TYPE")
        declared = parse_content_length(request.headers.get("content-length"))
        if declared is not None and declared > self.max_bytes:
            raise self._too_large()
        try:
            # A client trickling its body must not hold the request for ever.
            async with deadline(self.timeout):
                body = await self._receive(request.receive)
        except TimeoutError:
            raise RuntimeHTTPError(
                f"Request body not received within {self.timeout:g}s", "REQUEST_TIMEOUT"
            ) from None
        if not body.strip():
            raise RuntimeHTTPError(
                "Request body must be JSON",
                "VALIDATION_ERROR",
                [{"loc": ["body"], "msg": "body is empty"}],
            )
        payload = self.parse(body)
        problems = self.checker.problems(payload) if check else []
        if problems:
            raise RuntimeHTTPError("Input validation failed", "VALIDATION_ERROR", problems)
        return payload

    async def _receive(self, receive: Receive) -> bytes:
        """The whole body, straight from the ASGI messages (what `Request.stream()` yields,
        without its generator: a body usually comes in one message)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def message(self, data: bytes, *, check: bool = True) -> Any:
        """A WebSocket message that holds the agent's input, under the same checks as a
        body: the size limit (413), strict JSON (400) and the input schema (400), refused
        with the very errors a body gets."""
        if len(data) > self.max_bytes:
            raise self._too_large()
        if not data.strip():
            raise RuntimeHTTPError(
                "Request body must be JSON",
                "VALIDATION_ERROR",
                [{"loc": ["body"], "msg": "body is empty"}],
            )
        payload = self.parse(data)
        problems = self.checker.problems(payload) if check else []
        if problems:
            raise RuntimeHTTPError("Input validation failed", "VALIDATION_ERROR", problems)
        return payload

    def parse(self, body: bytes) -> Any:
        """Strict JSON within the depth and number limits."""
        # Counting brackets runs at C speed; only a body that could be too deep is walked.
        may_be_deep = body.count(b"[") + body.count(b"{") > self.max_depth
        try:
            payload = pydantic_core.from_json(body, allow_inf_nan=False, cache_strings=False)
        except ValueError as exc:
            message = str(exc)
            if message.startswith("recursion limit exceeded"):
                message = f"arrays and objects may be nested at most {self.max_depth} levels deep"
            elif message.startswith("number out of range"):
                message = f"integers may have at most {MAX_INTEGER_DIGITS} digits ({message})"
            raise RuntimeHTTPError(
                "Request body is not valid JSON",
                "VALIDATION_ERROR",
                [{"loc": ["body"], "msg": message}],
            ) from None
        if may_be_deep or _MAY_OVERFLOW.search(body):
            problem = _first_problem(payload, self.max_depth)
            if problem is not None:
                raise RuntimeHTTPError(
                    "Request body is not valid JSON",
                    "VALIDATION_ERROR",
                    [{"loc": ["body"], "msg": problem}],
                )
        return payload

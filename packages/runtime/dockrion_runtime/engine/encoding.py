"""Agent outputs made JSON, by the same encoder as the event models (pydantic-core).

What agents return is rarely plain JSON: LangChain messages and documents, pydantic models,
dataclasses, datetimes, UUIDs, enums, decimals, sets, tuples. pydantic-core encodes all of
them natively (models and messages in their own `model_dump` form, datetimes in ISO 8601,
decimals as exact strings, sets and tuples as arrays), which is also how every event's
fields are encoded, so `/invoke`, `complete.output` and `GET /runs/{id}` agree byte for
byte. A value it cannot encode is reported with its type and where it sits, in an output
(`output.items[2].when`) or in the data of an event the agent emits (`custom:note.thing`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pydantic_core
from pydantic import BaseModel
from starlette.responses import JSONResponse

from dockrion_events import EventEncodingError

__all__ = ["FastJSONResponse", "UnencodableError", "event_data_problem", "to_jsonable"]

_MAX_DEPTH = 200  # how deep the search for the culprit goes (the value itself is unbounded)


class UnencodableError(TypeError):
    """A value that has no JSON form; `path` says where it sits (`output.items[2].when`)."""

    code = "INVALID_OUTPUT"

    def __init__(self, path: str, value: Any, reason: str) -> None:
        kind = type(value)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        super().__init__(f"{path}: a value of type {name} cannot be encoded as JSON ({reason})")
        self.path = path
        self.type_name = name


def to_jsonable(value: Any, where: str = "output") -> Any:
    """`value` as plain JSON types (dict, list, str, int, float, bool, None)."""
    try:
        return pydantic_core.to_jsonable_python(value, fallback=_other_mapping)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        path, culprit = _locate(value, where, 0)
        raise UnencodableError(path, culprit, _reason(exc)) from None


def _other_mapping(value: Any) -> Any:
    """A mapping pydantic-core does not know (a `MappingProxyType`, such as
    `context.auth.claims`) as a dict; anything else stays unencodable."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Unable to serialize unknown type: {type(value)}")


def event_data_problem(exc: EventEncodingError) -> str:
    """What to tell the caller of a run whose agent emitted an event with no JSON form:
    the event type, the field's path and the value's type."""
    try:
        to_jsonable(exc.fields, where=exc.event_type)
    except UnencodableError as located:
        return f"Event data is not JSON-serialisable: {located}"
    return exc.message


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("Error serializing to JSON: ").split("\n", 1)[0]


def _encodes(value: Any) -> bool:
    try:
        pydantic_core.to_json(value, fallback=_other_mapping)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
        return False
    return True


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [(f".{key}", item) for key, item in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        return [(f"[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, BaseModel):
        return [(f".{name}", getattr(value, name, None)) for name in type(value).model_fields]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    return []


def _locate(value: Any, path: str, depth: int) -> tuple[str, Any]:
    """The deepest part of `value` that does not encode, and its path."""
    if depth < _MAX_DEPTH:
        for suffix, child in _children(value):
            if not _encodes(child):
                return _locate(child, path + suffix, depth + 1)
    return path, value


class FastJSONResponse(JSONResponse):
    """A JSON response encoded by pydantic-core (compact, UTF-8)."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)

"""The `io_schema` section of a Dockfile v1: the JSON Schemas of the agent's input and
output."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from ._fields import JSON_TYPES, _Section

__all__ = ["IOSchema", "IOSubSchema"]


def _properties(props: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, spec in props.items():
        if not name.strip():
            raise ValueError("property names must not be blank")
        kind = spec.get("type")
        if kind is not None and kind not in JSON_TYPES:
            raise ValueError(
                f"property {name!r} has type {kind!r}; allowed types: {', '.join(JSON_TYPES)}"
            )
        if kind == "array" and "items" not in spec:
            raise ValueError(f"property {name!r} is an array and needs 'items'")
    return props


class IOSubSchema(_Section):
    type: Literal["object", "string", "number", "integer", "boolean", "array", "null"] = "object"
    properties: Annotated[dict[str, dict[str, Any]], AfterValidator(_properties)] = Field(
        default_factory=dict
    )
    required: list[str] = Field(default_factory=list)
    items: dict[str, Any] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IOSubSchema:
        seen: set[str] = set()
        duplicates: list[str] = []
        for name in self.required:
            if name in seen and name not in duplicates:
                duplicates.append(name)
            seen.add(name)
        if duplicates:
            raise ValueError(f"'required' lists {', '.join(map(repr, duplicates))} more than once")
        if self.type == "object" and self.properties:
            unknown = [name for name in self.required if name not in self.properties]
            if unknown:
                raise ValueError(
                    f"'required' names {', '.join(map(repr, unknown))}, not in 'properties' "
                    f"(declared: {', '.join(self.properties)})"
                )
        if self.type == "array" and not self.items:
            raise ValueError("type 'array' needs a non-empty 'items'")
        return self


class IOSchema(_Section):
    strict: bool = True
    input: IOSubSchema | None = None
    output: IOSubSchema | None = None

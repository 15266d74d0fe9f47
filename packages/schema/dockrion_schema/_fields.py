"""The building blocks every Dockfile section is made of: the vocabularies, the
numeric ranges (`Between`), the shared validators and the section base class."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

SUPPORTED_VERSIONS = ("1.0",)
JSON_TYPES = ("object", "string", "number", "integer", "boolean", "array", "null")
CONFIGURABLE_EVENTS = (
    "token",
    "step",
    "progress",
    "checkpoint",
    "heartbeat",
    "tool_call",
    "tool_result",
)
MANDATORY_EVENTS = ("started", "complete", "error", "cancelled")
EVENT_PRESETS = ("minimal", "chat", "debug", "all")

AGENT_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TARGET_RE = re.compile(r"^[\w.]+:\w+$")
CUSTOM_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SECRET_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
RATE_LIMIT_RE = re.compile(r"^\s*(\d+)\s*/\s*([a-zA-Z]+)\s*$")
RATE_WINDOWS = {
    "s": "second",
    "sec": "second",
    "second": "second",
    "m": "minute",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hr": "hour",
    "hour": "hour",
    "d": "day",
    "day": "day",
}
# The length in seconds of each window a normalised rate limit names ("100/hour"): what
# a server counts a limit over.
RATE_WINDOW_SECONDS: Mapping[str, int] = MappingProxyType(
    {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
)


@dataclass(frozen=True, slots=True)
class Between:
    """An inclusive integer range whose error message gives both bounds."""

    low: int
    high: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(minimum=self.low, maximum=self.high)
        return json_schema

    def _check(self, value: int) -> int:
        if not self.low <= value <= self.high:
            raise ValueError(f"must be between {self.low} and {self.high}, got {value}")
        return value


def _positive(value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


def _non_blank_items(values: list[str]) -> list[str]:
    for index, item in enumerate(values):
        if not item.strip():
            raise ValueError(f"item {index} must not be blank")
    return values


NonBlankList = Annotated[list[str], AfterValidator(_non_blank_items)]


def _target(kind: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and not TARGET_RE.match(value):
            raise ValueError(
                f"must look like 'package.module:callable' (one ':', no spaces or slashes), "
                f"got {value!r}; this is the {kind} to import"
            )
        return value

    return check


class _Section(BaseModel):
    """Every Dockfile section keeps unknown keys (forward compatibility)."""

    model_config = ConfigDict(extra="allow", validate_default=False)

"""DockSpec <-> plain data and YAML text."""

from __future__ import annotations

from typing import Any

import pydantic
import yaml

from .dockfile_v1 import DockSpec
from .errors import DockfileError, DockfileIssue
from .yaml_source import format_path

__all__ = ["from_dict", "to_dict", "to_yaml_string"]


def to_dict(spec: DockSpec, exclude_none: bool = True) -> dict[str, Any]:
    """The spec as JSON-compatible data, unknown fields included."""
    return spec.model_dump(mode="json", exclude_none=exclude_none)


def _escaped(value: Any) -> Any:
    """`value` with every `${` in its strings written `$${`, so that loading the YAML again
    (which substitutes `${NAME}` and reads `$${` as a literal `${`) gives the same text."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


def to_yaml_string(spec: DockSpec, exclude_none: bool = True) -> str:
    """The spec as block-style YAML, in field order, unicode kept; loading it again gives
    the same spec (a literal `${` is written `$${`)."""
    return yaml.safe_dump(
        _escaped(to_dict(spec, exclude_none=exclude_none)),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


def from_dict(data: dict[str, Any]) -> DockSpec:
    """Validate already-substituted data. Raises `DockfileError` listing every problem."""
    try:
        return DockSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        from .loader import _message  # one wording for every entry point

        issues = [
            DockfileIssue(_message(error), path=format_path(tuple(error["loc"])))
            for error in exc.errors(include_url=False)
        ]
        raise DockfileError(issues) from None

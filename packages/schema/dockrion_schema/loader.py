"""Dockfile text -> validated `DockSpec`, with every problem located in the source."""

from __future__ import annotations

import copy
import difflib
import os
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import pydantic
from pydantic import BaseModel

from ._expose import ExposeConfig
from .dockfile_v1 import DockSpec
from .env import MISSING_ENV_VAR, EnvFileError, resolve_environment, substitute
from .errors import DockfileError, DockfileIssue, DockfileWarning
from .yaml_source import (
    Path,
    SourceMap,
    YamlSourceError,
    decode,
    format_path,
    read_limited,
    read_yaml,
)

__all__ = [
    "DockfileReport",
    "check_dockfile",
    "check_dockfile_text",
    "load_dockspec",
    "parse_dockspec",
]


@dataclass(slots=True)
class DockfileReport:
    """Everything known about one Dockfile: the spec when valid, every error and warning.

    `unchecked` lists the fields whose values wait for an unset `${VAR}` (only when checked
    with `require_env=False`): they are reported as warnings, and `spec` holds their
    `${VAR}` text as written (or is `None` when a required field could not be built).
    """

    source: str
    spec: DockSpec | None = None
    errors: list[DockfileIssue] = field(default_factory=list)
    warnings: list[DockfileIssue] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and (self.spec is not None or bool(self.unchecked))

    def raise_for_errors(self) -> DockSpec:
        if self.errors:
            raise DockfileError(self.errors, self.warnings)
        if self.spec is None:
            missing = [w for w in self.warnings if w.code == MISSING_ENV_VAR]
            raise DockfileError(missing or [DockfileIssue("no Dockfile", source=self.source)])
        for warning in self.warnings:
            warnings.warn(str(warning), DockfileWarning, stacklevel=3)
        return self.spec


def check_dockfile(
    path: str | os.PathLike[str],
    *,
    env_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    require_env: bool = True,
) -> DockfileReport:
    """Read, substitute and validate a Dockfile; never raises for a bad file.

    With `require_env=False` (what `dockrion-schema validate` does by default, for CI
    without the deployment environment) an unset `${VAR}` is a warning naming the variable
    and the field; the value is checked only once it is known.
    """
    file = FsPath(path)
    source = str(path)
    try:
        raw = read_limited(file, source)
    except YamlSourceError as exc:
        return DockfileReport(source, errors=[exc.issue])
    except FileNotFoundError:
        return DockfileReport(
            source, errors=[DockfileIssue("file not found", source=source, code="FILE_NOT_FOUND")]
        )
    except IsADirectoryError:
        return DockfileReport(
            source,
            errors=[
                DockfileIssue(
                    "is a directory; give the path of the Dockfile (e.g. Dockfile.yaml)",
                    source=source,
                    code="FILE_NOT_FOUND",
                )
            ],
        )
    except OSError as exc:
        return DockfileReport(
            source,
            errors=[
                DockfileIssue(
                    f"cannot read file: {exc.strerror}", source=source, code="FILE_NOT_FOUND"
                )
            ],
        )
    try:
        text = decode(raw, source)
    except YamlSourceError as exc:
        return DockfileReport(source, errors=[exc.issue])
    return check_dockfile_text(
        text,
        source,
        environ=environ,
        base_dir=file.parent,
        env_file=env_file,
        require_env=require_env,
    )


def check_dockfile_text(
    text: str,
    source: str = "<string>",
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: FsPath | None = None,
    env_file: str | os.PathLike[str] | None = None,
    require_env: bool = True,
) -> DockfileReport:
    """Like `check_dockfile` for text already in memory; env files are read from `base_dir`."""
    report = DockfileReport(source)
    try:
        data, source_map = read_yaml(text, source)
    except YamlSourceError as exc:
        report.errors.append(exc.issue)
        return report
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r})"
        report.errors.append(
            DockfileIssue(
                f"the top level must be a mapping of sections (version, agent, io_schema, "
                f"expose, ...), got {kind}",
                line=1,
                column=1,
                source=source,
            )
        )
        return report
    try:
        env = resolve_environment(base_dir, env_file, environ)
    except EnvFileError as exc:
        report.errors.append(exc.issue)
        return report
    implied = _default_redis_url(data, source_map)
    data, env_issues, unresolved = substitute(
        data, env, source_map, implied=implied, require_env=require_env
    )
    missing = [issue for issue in env_issues if issue.code == MISSING_ENV_VAR]
    report.errors.extend(issue for issue in env_issues if issue.code != MISSING_ENV_VAR)
    (report.errors if require_env else report.warnings).extend(missing)
    waiting = [format_path(path) for path in unresolved]
    try:
        spec = DockSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        reported = {issue.path for issue in env_issues}
        found = [
            issue
            for issue in _issues_from_pydantic(exc, data, source_map)
            if issue.path not in reported
        ]
        if require_env:
            report.errors.extend(found)
        else:
            # A value that waits for a variable cannot be judged by its `${VAR}` text.
            blocked = [issue for issue in found if _within(issue.path, waiting)]
            report.errors.extend(issue for issue in found if issue not in blocked)
            report.unchecked = waiting
            if not report.errors:
                report.spec = _without(data, unresolved)
    else:
        if not report.errors:
            report.spec = spec
            if not require_env:
                report.unchecked = waiting
    report.warnings.extend(_unknown_fields(DockSpec, data, (), source_map))
    report.errors.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
    return report


def load_dockspec(
    path: str | os.PathLike[str],
    *,
    env_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> DockSpec:
    """Load a Dockfile from disk. Raises `DockfileError` listing every problem found.

    >>> spec = load_dockspec("examples/quickstart/Dockfile.yaml")  # doctest: +SKIP
    >>> spec.agent.name  # doctest: +SKIP
    'quickstart'
    """
    return check_dockfile(path, env_file=env_file, environ=environ).raise_for_errors()


def parse_dockspec(
    text: str, source: str = "<string>", *, environ: Mapping[str, str] | None = None
) -> DockSpec:
    """Validate Dockfile text. `${VAR}` comes from `environ` (default: the process env)."""
    return check_dockfile_text(text, source, environ=environ).raise_for_errors()


def _default_redis_url(data: dict[str, Any], source_map: SourceMap) -> dict[Path, str]:
    # The documented default `${REDIS_URL}` must be expanded like any written value (not
    # with Sentinel: the primary's address then comes from the Sentinels).
    streaming = data.get("streaming")
    if isinstance(streaming, dict) and streaming.get("backend") == "redis":
        redis = streaming.get("redis")
        if redis is None:
            streaming["redis"] = {"url": "${REDIS_URL}"}
        elif isinstance(redis, dict) and "url" not in redis and "sentinel" not in redis:
            redis["url"] = "${REDIS_URL}"
        else:
            return {}
        # Point at `backend: redis`, the line that brings the default in.
        where = source_map.values.get(("streaming", "backend"))
        if where is not None:
            source_map.values[("streaming", "redis", "url")] = where
        return {("streaming", "redis", "url"): "streaming.redis.url"}
    return {}


def _within(path: str, prefixes: list[str]) -> bool:
    return any(
        path == prefix or path.startswith((prefix + ".", prefix + "[")) for prefix in prefixes
    )


def _without(data: dict[str, Any], paths: list[Path]) -> DockSpec | None:
    """The spec with the unresolved values left to their defaults, if that validates."""
    trimmed = copy.deepcopy(data)
    for path in paths:
        parent: Any = _value_at(trimmed, path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    try:
        return DockSpec.model_validate(trimmed)
    except pydantic.ValidationError:
        return None  # a required field waits for its variable: nothing to build yet


# --- pydantic errors -> located issues ---------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    return repr(value)


_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _message(error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of: {expected}; got {_show(value)}"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {_show(value)}"
    if kind in ("string_too_short", "string_too_long"):
        low, high = ctx.get("min_length"), ctx.get("max_length")
        bounds = f"at least {low}" if low is not None else f"at most {high}"
        return f"must be {bounds} characters long, got {_show(value)}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {_show(value)}"


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Path, bool]:
    """Keep the parts of a pydantic `loc` that address the document; drop union tags."""
    path: list[str | int] = []
    current = data
    on_key = False
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":
            on_key = True
            continue
        if isinstance(part, int) and isinstance(current, list) and part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and last and isinstance(current, dict):
            path.append(part)  # a missing field: located at its parent
        # otherwise: a union member tag such as 'str' or 'function-after[...]'
    return tuple(path), on_key


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _issues_from_pydantic(
    exc: pydantic.ValidationError, data: Any, source_map: SourceMap
) -> list[DockfileIssue]:
    issues: list[DockfileIssue] = []
    seen: set[tuple[Path, str]] = set()
    for error in exc.errors(include_url=False):
        path, on_key = _data_path(tuple(error["loc"]), data)
        message = _message(error)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        # A section-level rule points at the section's key; a scalar at the value itself.
        section = isinstance(_value_at(data, path), dict)
        if on_key or section:
            position = source_map.keys.get(path) or source_map.locate(path)
        else:
            position = source_map.locate(path)
        issues.append(
            DockfileIssue(
                message,
                path=format_path(path),
                line=position[0] if position else None,
                column=position[1] if position else None,
                source=source_map.source,
            )
        )
    return issues


# --- unknown fields -> warnings ------------------------------------------------------------

_KNOWN_DICT_KEYS: dict[tuple[type[BaseModel], str], tuple[str, ...]] = {
    (ExposeConfig, "cors"): ("origins", "methods"),
}


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, type | None]:
    """The section model inside `M`, `M | None`, `list[M]` or `dict[str, M]`, and its
    container (`list`, `dict` or None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        model, container = _nested_model(arg)
        if model is not None:
            return model, container or (origin if origin in (list, dict) else None)
    return None, None


def _unknown_fields(
    model: type[BaseModel], data: Any, path: Path, source_map: SourceMap
) -> list[DockfileIssue]:
    """Walk the raw document beside the models, so warnings come even when errors do too."""
    if not isinstance(data, dict):
        return []
    found: list[DockfileIssue] = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            found.append(_unknown(key, list(fields), (*path, key), source_map))
            continue
        allowed = _KNOWN_DICT_KEYS.get((model, key))
        if allowed is not None and isinstance(value, dict):
            found.extend(
                _unknown(inner, list(allowed), (*path, key, inner), source_map)
                for inner in value
                if inner not in allowed
            )
            continue
        nested, container = _nested_model(fields[key].annotation)
        if nested is None:
            continue
        if container is list and isinstance(value, list):
            for index, item in enumerate(value):
                found.extend(_unknown_fields(nested, item, (*path, key, index), source_map))
        elif container is dict and isinstance(value, dict):
            for name, item in value.items():
                found.extend(_unknown_fields(nested, item, (*path, key, name), source_map))
        else:
            found.extend(_unknown_fields(nested, value, (*path, key), source_map))
    return found


def _unknown(key: str, known: list[str], path: Path, source_map: SourceMap) -> DockfileIssue:
    guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {guess[0]!r}?" if guess else f"; known fields: {', '.join(known)}"
    position = source_map.keys.get(path) or source_map.locate(path)
    return DockfileIssue(
        f"unknown field {key!r} (kept, but nothing reads it){hint}",
        path=format_path(path),
        line=position[0] if position else None,
        column=position[1] if position else None,
        source=source_map.source,
        code="UNKNOWN_FIELD",
    )

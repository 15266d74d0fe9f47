"""`${VAR}` substitution and the env files a Dockfile may sit beside.

Precedence, highest first: the shell environment, `--env-file`, `.env`, `env.yaml` /
`env.yml`. Files never overwrite the process environment; they only fill what it lacks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from .errors import DockfileIssue
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
    "MISSING_ENV_VAR",
    "EnvFileError",
    "load_env_files",
    "parse_dotenv",
    "resolve_environment",
    "substitute",
]

# `$${` is an escaped literal `${`; otherwise `${NAME}` or `${NAME:-default}`.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}:]*)(:-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")


class EnvFileError(Exception):
    def __init__(self, issue: DockfileIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """`KEY=value` lines; `#` comments, blank lines and `export ` prefixes allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if not match:
            raise EnvFileError(
                DockfileIssue(
                    f"expected KEY=value, got {line[:60]!r}", line=number, column=1, source=source
                )
            )
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _parse_yaml_env(text: str, source: str) -> dict[str, str]:
    # The Dockfile's reader: plain-data tags only, the same size, depth and alias limits.
    try:
        data, _ = read_yaml(text, source, what="env file", allow_empty=True)
    except YamlSourceError as exc:
        raise EnvFileError(exc.issue) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EnvFileError(
            DockfileIssue("must be a mapping of NAME: value", line=1, column=1, source=source)
        )
    values: dict[str, str] = {}
    nested = data.get("secrets")
    for mapping in (data, nested if isinstance(nested, dict) else {}):
        for key, value in mapping.items():
            if isinstance(value, dict | list) or value is None:
                continue
            values[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def _read_env_file(path: FsPath) -> dict[str, str]:
    source = str(path)
    try:
        text = decode(read_limited(path, source, what="env file"), source, what="env file")
    except YamlSourceError as exc:
        raise EnvFileError(exc.issue) from None
    except OSError as exc:
        raise EnvFileError(
            DockfileIssue(f"cannot read env file: {exc.strerror or exc}", source=source)
        ) from None
    if path.suffix in (".yaml", ".yml"):
        return _parse_yaml_env(text, source)
    return parse_dotenv(text, source)


def load_env_files(
    directory: FsPath, env_file: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """Merged values of the env files beside a Dockfile (lowest precedence first)."""
    merged: dict[str, str] = {}
    for name in ("env.yml", "env.yaml", ".env"):
        candidate = directory / name
        if candidate.is_file():
            merged.update(_read_env_file(candidate))
    if env_file is not None:
        path = FsPath(env_file)
        if not path.is_file() and not path.is_absolute() and (directory / path).is_file():
            path = directory / path
        if not path.is_file():
            raise EnvFileError(DockfileIssue(f"env file not found: {env_file}", source=str(path)))
        merged.update(_read_env_file(path))
    return merged


def resolve_environment(
    directory: FsPath | None,
    env_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Env files first, then the shell environment over them (the shell always wins)."""
    values = load_env_files(directory, env_file) if directory is not None else {}
    values.update(os.environ if environ is None else environ)
    return values


def substitute(
    data: Any,
    env: Mapping[str, str],
    source_map: SourceMap,
    path: Path = (),
    *,
    implied: Mapping[Path, str] | None = None,
    require_env: bool = True,
) -> tuple[Any, list[DockfileIssue], list[Path]]:
    """Replace `${VAR}` in every string value (keys untouched); collect every problem.

    Returns the data, the issues (an unset variable has code `MISSING_ENV_VAR`) and the
    paths of values left unresolved because a variable is unset. `implied` maps the paths
    of values the user did not write (defaults such as the Redis URL) to the field name
    the message should suggest writing. `require_env` only changes the wording: an unset
    variable is then something to fix now, otherwise a value that is not checked yet.
    """
    issues: list[DockfileIssue] = []
    unresolved: list[Path] = []
    implied = implied or {}

    def visit(value: Any, where: Path) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            before = len(issues)
            expanded = _expand(value, env, where, source_map, issues, implied.get(where))
            if any(issue.code == MISSING_ENV_VAR for issue in issues[before:]):
                unresolved.append(where)
                if not require_env:
                    issues[before:] = [_as_unchecked(issue) for issue in issues[before:]]
            return expanded
        if isinstance(value, dict):
            return {key: visit(item, (*where, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [visit(item, (*where, index)) for index, item in enumerate(value)]
        return value

    return visit(data, path), issues, unresolved


MISSING_ENV_VAR = "MISSING_ENV_VAR"


def _as_unchecked(issue: DockfileIssue) -> DockfileIssue:
    if issue.code != MISSING_ENV_VAR:
        return issue
    variable, _, fix = issue.message.partition("; ")
    return replace(
        issue, message=f"{variable}: this value is not checked, and serving needs it ({fix})"
    )


def _expand(
    text: str,
    env: Mapping[str, str],
    where: Path,
    source_map: SourceMap,
    issues: list[DockfileIssue],
    implied_field: str | None = None,
) -> str:
    def replace_token(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, has_default, default = match.group(1), match.group(2), match.group(3)
        if not _NAME.match(name):
            issues.append(
                _located(f"invalid variable name {name!r} in {text!r}", where, source_map)
            )
            return match.group(0)
        if name in env:
            return env[name]
        if has_default is not None:
            return default or ""
        if implied_field is not None:
            message = (
                f"environment variable {name!r} is not set (the default of {implied_field} is "
                f"{text}); set it, put it in .env, or write {implied_field}"
            )
        else:
            message = (
                f"environment variable {name!r} is not set; set it, put it in .env, or give a "
                f"default with ${{{name}:-default}}"
            )
        issues.append(_located(message, where, source_map, code=MISSING_ENV_VAR))
        return match.group(0)

    return _TOKEN.sub(replace_token, text)


def _located(
    message: str, where: Path, source_map: SourceMap, code: str = "VALIDATION_ERROR"
) -> DockfileIssue:
    position = source_map.locate(where)
    return DockfileIssue(
        message,
        path=format_path(where),
        line=position[0] if position else None,
        column=position[1] if position else None,
        source=source_map.source,
        code=code,
    )

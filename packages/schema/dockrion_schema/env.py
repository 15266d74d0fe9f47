"""`${VAR}` substitution and the env files a Dockfile may sit beside.

Precedence, highest first: the shell environment, `--env-file`, `.env`, `env.yaml` /
`env.yml`. Files never overwrite the process environment; they only fill what it lacks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any

import yaml

from .errors import DockfileIssue
from .yaml_source import Path, SourceMap, format_path

__all__ = ["load_env_files", "parse_dotenv", "resolve_environment", "substitute"]

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
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EnvFileError(
            DockfileIssue(
                f"YAML syntax error: {getattr(exc, 'problem', exc)}",
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                source=source,
            )
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EnvFileError(DockfileIssue("must be a mapping of NAME: value", source=source))
    values: dict[str, str] = {}
    nested = data.get("secrets")
    for mapping in (data, nested if isinstance(nested, dict) else {}):
        for key, value in mapping.items():
            if isinstance(value, dict | list) or value is None:
                continue
            values[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def _read_env_file(path: FsPath) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        return _parse_yaml_env(text, str(path))
    return parse_dotenv(text, str(path))


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
    data: Any, env: Mapping[str, str], source_map: SourceMap, path: Path = ()
) -> tuple[Any, list[DockfileIssue]]:
    """Replace `${VAR}` in every string value (keys untouched); collect every problem."""
    issues: list[DockfileIssue] = []

    def visit(value: Any, where: Path) -> Any:
        if isinstance(value, str):
            return _expand(value, env, where, source_map, issues) if "$" in value else value
        if isinstance(value, dict):
            return {key: visit(item, (*where, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [visit(item, (*where, index)) for index, item in enumerate(value)]
        return value

    return visit(data, path), issues


def _expand(
    text: str,
    env: Mapping[str, str],
    where: Path,
    source_map: SourceMap,
    issues: list[DockfileIssue],
) -> str:
    def replace(match: re.Match[str]) -> str:
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
        issues.append(
            _located(
                f"environment variable {name!r} is not set; set it, put it in .env, or give a "
                f"default with ${{{name}:-default}}",
                where,
                source_map,
                code="MISSING_ENV_VAR",
            )
        )
        return match.group(0)

    return _TOKEN.sub(replace, text)


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

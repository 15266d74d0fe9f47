"""Safe YAML reading that remembers where every value came from.

PyYAML's safe loader silently keeps the last of two duplicate keys, expands aliases without
limit and forgets positions. This module composes the node tree with PyYAML, then builds
plain Python data itself: it rejects duplicate keys, bounds alias expansion and nesting, and
records the line and column of every key and value so errors can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import DockfileIssue

__all__ = ["MAX_FILE_BYTES", "Path", "SourceMap", "YamlSourceError", "format_path", "read_yaml"]

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


def format_path(path: Path) -> str:
    """`("auth", "roles", 0, "name")` -> `auth.roles[0].name`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class YamlSourceError(Exception):
    """The text is not a usable YAML document; `issue` says where and why."""

    def __init__(self, issue: DockfileIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


@dataclass(slots=True)
class SourceMap:
    """Positions (1-based line, column) of the values and keys of a document, by path."""

    source: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int] | None:
        """The value at `path`, else its key, else the nearest enclosing value that exists."""
        for depth in range(len(path), -1, -1):
            prefix = path[:depth]
            if prefix in self.values and depth == len(path):
                return self.values[prefix]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return None


def _issue(message: str, source: str, mark: Any = None, line: int | None = None) -> DockfileIssue:
    if mark is not None:
        return DockfileIssue(message, line=mark.line + 1, column=mark.column + 1, source=source)
    return DockfileIssue(message, line=line, column=1 if line else None, source=source)


def decode(raw: bytes, source: str) -> str:
    """UTF-8 (with or without BOM) to text, or a located error."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlSourceError(
            _issue(
                f"file is {len(raw)} bytes, over the {MAX_FILE_BYTES} byte limit for a Dockfile",
                source,
            )
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        issue = DockfileIssue(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            line=line,
            column=column,
            source=source,
        )
        raise YamlSourceError(issue) from None


def read_yaml(text: str, source: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus a `SourceMap`."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise YamlSourceError(
            _issue(f"file is over the {MAX_FILE_BYTES} byte limit for a Dockfile", source)
        )
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise YamlSourceError(
            _issue(
                "file is empty; a Dockfile needs at least version, agent, io_schema and expose",
                source,
            )
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise YamlSourceError(_syntax_issue(exc, text, source)) from None
    except RecursionError:
        raise YamlSourceError(_issue("nesting is too deep", source)) from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(_issue(f"YAML error: {exc}", source)) from None
    if node is None:
        raise YamlSourceError(_issue("file is empty", source))
    builder = _Builder(source)
    data = builder.build(node, ())
    return data, builder.map


def _syntax_issue(exc: yaml.MarkedYAMLError, text: str, source: str) -> DockfileIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if mark is not None:
        lines = text.splitlines()
        line_text = lines[mark.line] if mark.line < len(lines) else ""
        indent = line_text[: len(line_text) - len(line_text.lstrip())]
        if "\t" in indent or "'\\t'" in problem:
            column = line_text.find("\t") + 1
            return DockfileIssue(
                "tab character in indentation; YAML indents with spaces only",
                line=mark.line + 1,
                column=column if column > 0 else mark.column + 1,
                source=source,
            )
    context = f" ({exc.context})" if exc.context else ""
    return _issue(f"YAML syntax error: {problem}{context}", source, mark)


class _Builder:
    def __init__(self, source: str) -> None:
        self.map = SourceMap(source)
        self.count = 0
        self._constructor = yaml.SafeLoader("")

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlSourceError(
                _issue(
                    f"document expands to more than {MAX_NODES} values "
                    "(an alias expansion bomb?); refusing to load it",
                    self.map.source,
                    node.start_mark,
                )
            )
        if depth > MAX_DEPTH:
            raise YamlSourceError(
                _issue(f"nesting deeper than {MAX_DEPTH} levels", self.map.source, node.start_mark)
            )
        self.map.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, ScalarNode):
            return self._constructor.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        raise YamlSourceError(_issue("unsupported YAML node", self.map.source, node.start_mark))

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise YamlSourceError(
                            _issue("'<<' merges only mappings", self.map.source, source.start_mark)
                        )
                    merged.append(source)
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlSourceError(
                    _issue(
                        "mapping keys must be plain strings", self.map.source, key_node.start_mark
                    )
                )
            # Keys are names: keep their text (`on`, `yes`, `1.0` stay strings).
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                raise YamlSourceError(
                    _issue(
                        f"duplicate key {key!r} (first defined at line {first_seen[key]}); "
                        "YAML would silently keep only the last one",
                        self.map.source,
                        key_node.start_mark,
                    )
                )
            first_seen[key] = line
            child = (*path, key)
            self.map.keys[child] = (line, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child, depth + 1)
        for source in merged:
            extra = self._mapping(source, path, depth)
            for key, value in extra.items():
                result.setdefault(key, value)
        return result

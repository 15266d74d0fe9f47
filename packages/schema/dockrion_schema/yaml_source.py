"""Safe YAML reading that remembers where every value came from.

One reader for the Dockfile and for every YAML env file. PyYAML's safe loader silently
keeps the last of two duplicate keys, expands aliases without limit, recurses once per
nesting level and forgets positions. This module composes the node tree with PyYAML (with a
depth bound checked while composing), then builds plain Python data itself: it accepts only
the plain-data tags (strings, numbers, booleans, null, timestamps, lists, mappings), rejects
duplicate keys, bounds size, alias expansion and nesting, and records the line and column of
every key and value so errors can point at them. A syntax error PyYAML raises is turned
into an issue located where the mistake is by `_yaml_syntax.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._yaml_syntax import SYNTAX_ERROR, article, issue_at, syntax_issue
from .errors import DockfileIssue

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "Path",
    "SourceMap",
    "YamlSourceError",
    "decode",
    "format_path",
    "read_limited",
    "read_yaml",
]

# Limits for a Dockfile and for each env file; a real Dockfile is a few kilobytes.
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]
_CORE = "tag:yaml.org,2002:"
_MERGE_TAG = _CORE + "merge"
_SCALAR_TAGS = {_CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp")}
_PLAIN_DATA = "strings, numbers, booleans, null, lists and mappings"

TAG_NOT_ALLOWED = "YAML_TAG_NOT_ALLOWED"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


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


def _too_big(size: int | None, source: str, what: str) -> YamlSourceError:
    size_text = f"{size} bytes" if size is not None else "too big"
    return YamlSourceError(
        issue_at(
            f"file is {size_text}, over the {MAX_FILE_BYTES} byte limit for {article(what)}",
            source,
            code=LIMIT_EXCEEDED,
        )
    )


def read_limited(path: str | os.PathLike[str], source: str, what: str = "Dockfile") -> bytes:
    """The bytes of a file, refusing (without reading it all) one over `MAX_FILE_BYTES`.

    `OSError` (missing, unreadable, a directory) is left to the caller to word.
    """
    file = FsPath(path)
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _too_big(size, source, what)
    with file.open("rb") as handle:
        # A file can grow after the stat, and a device or pipe reports no size at all.
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _too_big(None, source, what)
    return raw


def decode(raw: bytes, source: str, what: str = "Dockfile") -> str:
    """UTF-8 (with or without BOM) to text, or a located error."""
    if len(raw) > MAX_FILE_BYTES:
        raise _too_big(len(raw), source, what)
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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: stop it at `MAX_DEPTH`."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.text = text
        self.source = source
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            # The root is depth 1 here and depth 0 for the builder: the same bound in both.
            if self.depth > MAX_DEPTH + 1:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlSourceError(
                    issue_at(
                        f"nesting deeper than {MAX_DEPTH} levels",
                        self.source,
                        mark,
                        code=LIMIT_EXCEEDED,
                        text=self.text,
                    )
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_yaml(
    text: str, source: str = "<string>", *, what: str = "Dockfile", allow_empty: bool = False
) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus a `SourceMap`.

    `what` names the kind of file in messages; with `allow_empty` an empty document is
    `None` instead of an error.
    """
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise _too_big(None, source, what)
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        if allow_empty:
            return None, SourceMap(source)
        raise YamlSourceError(
            issue_at(
                "file is empty; a Dockfile needs at least version, agent, io_schema and expose",
                source,
            )
        )
    loader = _BoundedLoader(text, source)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise YamlSourceError(syntax_issue(exc, text, source, what)) from None
    except RecursionError:
        raise YamlSourceError(
            issue_at(f"nesting deeper than {MAX_DEPTH} levels", source, code=LIMIT_EXCEEDED)
        ) from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(issue_at(f"YAML error: {exc}", source, code=SYNTAX_ERROR)) from None
    finally:
        loader.dispose()
    if node is None:
        if allow_empty:
            return None, SourceMap(source)
        raise YamlSourceError(issue_at("file is empty", source))
    builder = _Builder(source, text, what)
    data = builder.build(node, ())
    return data, builder.map


# --- node tree -> plain data ---------------------------------------------------------------


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Builder:
    def __init__(self, source: str, text: str = "", what: str = "Dockfile") -> None:
        self.map = SourceMap(source)
        self.count = 0
        self.text = text
        self.what = what
        self._constructor = yaml.SafeLoader("")

    def error(self, message: str, node: Node, code: str = "VALIDATION_ERROR") -> YamlSourceError:
        return YamlSourceError(
            issue_at(message, self.map.source, node.start_mark, code=code, text=self.text)
        )

    def check_tag(self, node: Node) -> None:
        tag = node.tag
        if isinstance(node, ScalarNode):
            allowed = tag in _SCALAR_TAGS or tag == _MERGE_TAG
        elif isinstance(node, SequenceNode):
            allowed = tag == _CORE + "seq"
        else:
            allowed = tag == _CORE + "map"
        if allowed:
            return
        shown = _show_tag(tag)
        if tag.startswith(_CORE + "python/"):
            reason = f"Python objects are never built from {article(self.what)}"
        elif tag.startswith(_CORE):
            reason = f"{article(self.what)} holds only {_PLAIN_DATA}"
        else:
            reason = f"unknown tag; {article(self.what)} holds only {_PLAIN_DATA}"
        raise self.error(
            f"tag {shown!r} is not allowed: {reason}; remove the tag (quote the value to keep "
            "it as text)",
            node,
            TAG_NOT_ALLOWED,
        )

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _MERGE_TAG:
            return node.value  # a plain `<<` outside key position is just text
        try:
            return self._constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:
            # For instance an integer past Python's digit limit, or the date 2024-13-45.
            kind = _show_tag(node.tag).removeprefix("!!")
            reason = str(exc).split(";")[0]
            raise self.error(f"cannot read {node.value[:40]!r} as {kind}: {reason}", node) from None

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(
                f"document expands to more than {MAX_NODES} values "
                "(an alias expansion bomb?); refusing to load it",
                node,
                LIMIT_EXCEEDED,
            )
        if depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} levels", node, LIMIT_EXCEEDED)
        self.check_tag(node)
        self.map.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        raise self.error("unsupported YAML node", node)

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise self.error("'<<' merges only mappings", source)
                    self.check_tag(source)
                    merged.append(source)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self.error("mapping keys must be plain strings", key_node)
            self.check_tag(key_node)
            # Keys are names: keep their text (`on`, `yes`, `1.0` stay strings).
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                raise self.error(
                    f"duplicate key {key!r} (first defined at line {first_seen[key]}); "
                    "YAML would silently keep only the last one",
                    key_node,
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

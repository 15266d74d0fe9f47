"""Errors a user can act on: each names the place, the bad value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DockfileError",
    "DockfileIssue",
    "DockfileWarning",
    "DockrionError",
    "ValidationError",
]


class DockrionError(Exception):
    """Base of every Dockrion error: a human message and a stable machine `code`."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


class ValidationError(DockrionError):
    """Input that breaks a rule of the contract."""

    code = "VALIDATION_ERROR"


@dataclass(frozen=True, slots=True)
class DockfileIssue:
    """One problem (or warning) in a Dockfile, located in the YAML source when known.

    `path` is the dotted field path (`streaming.events.heartbeat_interval`, `auth.roles[0]`),
    empty for problems with the file as a whole. `line` and `column` are 1-based. `excerpt`
    is the text of that line, shown under the message with a caret at the column (set for
    YAML syntax errors, where the position alone is hard to read).
    """

    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    source: str = "<string>"
    code: str = "VALIDATION_ERROR"
    extra: dict[str, Any] = field(default_factory=dict)
    excerpt: str = ""

    def location(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column or 1}"

    def __str__(self) -> str:
        where = self.location()
        text = f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"
        if self.excerpt and self.column:
            # Keep tabs so the caret lines up under the same character in any terminal.
            pad = "".join(c if c == "\t" else " " for c in self.excerpt[: self.column - 1])
            text += f"\n    {self.excerpt}\n    {pad}^"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.source,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "code": self.code,
        }
        data.update(self.extra)
        return data


class DockfileError(ValidationError):
    """A Dockfile that cannot be used. `issues` lists every problem found, not only the first."""

    def __init__(self, issues: list[DockfileIssue], warnings: list[DockfileIssue] | None = None):
        self.issues = list(issues)
        self.warnings = list(warnings or [])
        count = len(self.issues)
        # Name the files: a problem may sit in an env file beside the Dockfile.
        named = (issue.source for issue in self.issues if not issue.source.startswith("<"))
        sources = list(dict.fromkeys(source for source in named if source))
        where = " and ".join(sources) if 0 < len(sources) <= 3 else "the Dockfile"
        head = f"{count} problem{'s' if count != 1 else ''} in {where}"
        super().__init__(head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues))

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": self.code,
            "issues": [issue.to_dict() for issue in self.issues],
        }


class DockfileWarning(UserWarning):
    """Something in a Dockfile that works but is probably not what was meant."""

"""PyYAML's errors as Dockfile issues a person can act on: each points at the line and
column where the mistake is (an unclosed bracket or quote where it opens, not where the
parser gave up) and quotes that line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import DockfileIssue

__all__ = ["SYNTAX_ERROR", "article", "issue_at", "line_excerpt", "syntax_issue"]

SYNTAX_ERROR = "YAML_SYNTAX_ERROR"
_EXCERPT_TAIL = 60


def issue_at(
    message: str,
    source: str,
    mark: Any = None,
    line: int | None = None,
    code: str = "VALIDATION_ERROR",
    text: str | None = None,
) -> DockfileIssue:
    """An issue at PyYAML's `mark` (quoting its line when `text` is given), else at `line`."""
    if mark is not None:
        return DockfileIssue(
            message,
            line=mark.line + 1,
            column=mark.column + 1,
            source=source,
            code=code,
            excerpt=line_excerpt(text, mark.line, mark.column) if text is not None else "",
        )
    return DockfileIssue(message, line=line, column=1 if line else None, source=source, code=code)


def line_excerpt(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if line >= len(lines):
        return ""
    excerpt = lines[line]
    if len(excerpt) > column + _EXCERPT_TAIL:
        excerpt = excerpt[: column + _EXCERPT_TAIL] + " ..."
    return excerpt


def article(what: str) -> str:
    """`"Dockfile"` -> `"a Dockfile"`, `"env file"` -> `"an env file"`."""
    return f"an {what}" if what[0] in "aeiou" else f"a {what}"


_FOUND = re.compile(r"but (?:got|found) (.+)$")
_CLOSERS = {"flow sequence": ("[", "]", "list"), "flow mapping": ("{", "}", "mapping")}


_TOKENS = {
    "<stream end>": "the end of the file",
    "<block mapping start>": "a more indented block of keys",
    "<block sequence start>": "a more indented list",
    "<block end>": "the end of the block",
    "<scalar>": "another value",
    "?": "a key",
    "-": "a list item",
}


def _found(problem: str) -> str:
    match = _FOUND.search(problem)
    if match is None:
        return problem
    token = match.group(1).strip("'")
    return _TOKENS.get(token, repr(token))


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def syntax_issue(exc: yaml.MarkedYAMLError, text: str, source: str, what: str) -> DockfileIssue:
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    lines = text.splitlines()

    def located(message: str, mark: Any) -> DockfileIssue:
        return issue_at(f"YAML syntax error: {message}", source, mark, code=SYNTAX_ERROR, text=text)

    if problem_mark is not None and ("'\\t'" in problem or _tab_in_indent(lines, problem_mark)):
        line_text = lines[problem_mark.line] if problem_mark.line < len(lines) else ""
        column = line_text.find("\t")
        return DockfileIssue(
            "tab character in indentation; YAML indents with spaces only",
            line=problem_mark.line + 1,
            column=column + 1 if column >= 0 else problem_mark.column + 1,
            source=source,
            code=SYNTAX_ERROR,
            excerpt=line_excerpt(text, problem_mark.line, 0),
        )
    # A construct with a closing delimiter is reported where it opens: that is where the
    # mistake is, while the parser only notices it later (often at the end of the file).
    for kind, (opener, closer, noun) in _CLOSERS.items():
        if context == f"while parsing a {kind}" and context_mark is not None:
            return located(
                f"'{opener}' is never closed: the {noun} that starts here needs a '{closer}' "
                f"(at {_at(problem_mark)} expected ',' or '{closer}', found "
                f"{_found(problem)})",
                context_mark,
            )
    if "quoted scalar" in context and context_mark is not None and "end of stream" in problem:
        quote = _text_at(lines, context_mark) or "quote"
        return located(
            f"{quote} is never closed: the string that starts here runs to the end of the file",
            context_mark,
        )
    if "quoted scalar" in context and context_mark is not None and "document separator" in problem:
        quote = _text_at(lines, context_mark) or "quote"
        return located(
            f"{quote} is never closed: the string that starts here runs into '---' at "
            f"{_at(problem_mark)}",
            context_mark,
        )
    if problem == "mapping values are not allowed here":
        return located(
            "a ':' here starts a mapping where none is allowed: is this line indented too far, "
            "or does a plain value contain ': '? (then quote the value)",
            problem_mark,
        )
    if context.startswith("while parsing a block") and problem_mark is not None:
        return located(
            f"bad indentation or a stray value: expected a key at the indentation of the "
            f"mapping or list above, found {_found(problem)}",
            problem_mark,
        )
    if context == "expected a single document in the stream":
        return located(
            f"{article(what)} is a single YAML document; a second one starts here", problem_mark
        )
    if problem == "second occurrence" and context_mark is not None:
        return located(
            f"{context.split(';')[0].removeprefix('found ')} (first at {_at(context_mark)})",
            problem_mark,
        )
    where = " (" + context + (f" at {_at(context_mark)}" if context_mark else "") + ")"
    return located(problem + (where if context else ""), problem_mark or context_mark)


def _text_at(lines: list[str], mark: Any) -> str:
    line = lines[mark.line] if mark.line < len(lines) else ""
    char = line[mark.column : mark.column + 1]
    return {"'": "single quote (')", '"': 'double quote (")'}.get(char, "")


def _tab_in_indent(lines: list[str], mark: Any) -> bool:
    line_text = lines[mark.line] if mark.line < len(lines) else ""
    return "\t" in line_text[: len(line_text) - len(line_text.lstrip())]

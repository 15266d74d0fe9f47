"""A YAML syntax error points at the mistake: where an unclosed construct begins, with the
line's text and a caret, in the text output and as line/column in the JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockrion_schema import check_dockfile_text

HEAD = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'


def only_error(text: str) -> tuple[int | None, int | None, str, str]:
    report = check_dockfile_text(text, "Dockfile.yaml", environ={})
    [issue] = report.errors
    assert issue.code == "YAML_SYNTAX_ERROR"
    return issue.line, issue.column, issue.message, str(issue)


@pytest.mark.parametrize(
    ("kind", "text", "line", "column", "message"),
    [
        (
            "unclosed flow sequence at the end of the file",
            HEAD + "expose:\n  port: 8080\n  rest: [true\n",
            6,
            9,
            "YAML syntax error: '[' is never closed: the list that starts here needs a ']' "
            "(at line 7, column 1 expected ',' or ']', found the end of the file)",
        ),
        (
            "unclosed flow sequence followed by more keys",
            HEAD + "expose:\n  cors: {origins: [a, b}\n  port: 1\n",
            5,
            19,
            "YAML syntax error: '[' is never closed: the list that starts here needs a ']' "
            "(at line 5, column 24 expected ',' or ']', found '}')",
        ),
        (
            "unclosed flow mapping",
            'version: "1.0"\nagent: {name: demo\nio_schema: {}\nexpose: {}\n',
            2,
            8,
            "YAML syntax error: '{' is never closed: the mapping that starts here needs a '}' "
            "(at line 3, column 10 expected ',' or '}', found ':')",
        ),
        (
            "unclosed double quote",
            'version: "1.0"\nagent: {name: demo, handler: "app:handle}\nio_schema: {}\n',
            2,
            30,
            'YAML syntax error: double quote (") is never closed: the string that starts here '
            "runs to the end of the file",
        ),
        (
            "unclosed single quote",
            HEAD + "expose: {host: '127.0.0.1}\n",
            4,
            16,
            "YAML syntax error: single quote (') is never closed: the string that starts here "
            "runs to the end of the file",
        ),
        (
            "key indented too far",
            HEAD + "expose:\n  port: 8080\n    rest: true\n",
            6,
            9,
            "YAML syntax error: a ':' here starts a mapping where none is allowed: is this line "
            "indented too far, or does a plain value contain ': '? (then quote the value)",
        ),
        (
            "key indented between two levels",
            HEAD + "expose:\n    port: 8080\n  rest: true\n",
            6,
            3,
            "YAML syntax error: bad indentation or a stray value: expected a key at the "
            "indentation of the mapping or list above, found a more indented block of keys",
        ),
        (
            "mapping value where none is allowed",
            HEAD.replace("io_schema: {}", "io_schema: {}\nmetadata:\n  description: Echo: back"),
            5,
            20,
            "YAML syntax error: a ':' here starts a mapping where none is allowed: is this line "
            "indented too far, or does a plain value contain ': '? (then quote the value)",
        ),
        (
            "text after a quoted value",
            HEAD + 'expose: {}\nmetadata:\n  maintainer: "me" and you\n',
            6,
            20,
            "YAML syntax error: bad indentation or a stray value: expected a key at the "
            "indentation of the mapping or list above, found another value",
        ),
        (
            "tab in indentation",
            HEAD + "expose:\n\tport: 8080\n",
            5,
            1,
            "tab character in indentation; YAML indents with spaces only",
        ),
        (
            "a second document",
            HEAD + "expose: {}\n---\nversion: 2\n",
            5,
            1,
            "YAML syntax error: a Dockfile is a single YAML document; a second one starts here",
        ),
    ],
)
def test_syntax_error_kind_is_located(
    kind: str, text: str, line: int, column: int, message: str
) -> None:
    assert only_error(text)[:3] == (line, column, message), kind


def test_the_line_is_shown_with_a_caret() -> None:
    *_, shown = only_error(HEAD + "expose:\n  port: 8080\n  rest: [true\n")
    assert shown.splitlines()[1:] == ["      rest: [true", "            ^"]


def test_the_caret_lines_up_under_tabs() -> None:
    *_, shown = only_error(HEAD + "expose:\n\tport: 8080\n")
    assert shown.splitlines()[1:] == ["    \tport: 8080", "    ^"]


def test_cli_text_and_json_for_an_unclosed_bracket(tmp_path: Path) -> None:
    path = tmp_path / "Dockfile.yaml"
    path.write_text(HEAD + "expose:\n  port: 8080\n  rest: [true\n")
    run = [sys.executable, "-m", "dockrion_schema", "validate"]
    text = subprocess.run([*run, str(path)], capture_output=True, text=True, check=False)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        f"{path}:6:9 YAML syntax error: '[' is never closed: the list that starts here needs "
        "a ']' (at line 7, column 1 expected ',' or ']', found the end of the file)",
        "      rest: [true",
        "            ^",
        f"{path}: invalid (1 error)",
    ]
    result = subprocess.run(
        [*run, "--format", "json", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    [error] = json.loads(result.stdout)["files"][0]["errors"]
    assert {key: error[key] for key in ("severity", "path", "line", "column", "code")} == {
        "severity": "error",
        "path": "",
        "line": 6,
        "column": 9,
        "code": "YAML_SYNTAX_ERROR",
    }
    assert error["message"].startswith("YAML syntax error: '[' is never closed")


def test_the_readme_shows_what_the_cli_prints(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### YAML syntax errors") :]
    start = section.index("```console\n") + len("```console\n")
    command, *shown = section[start : section.index("```", start)].splitlines()
    assert command == "$ dockrion-schema validate Dockfile.yaml"
    (tmp_path / "Dockfile.yaml").write_text(HEAD + "expose:\n  port: 8080\n  rest: [true\n")
    result = subprocess.run(
        [sys.executable, "-m", "dockrion_schema", "validate", "Dockfile.yaml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.stdout.splitlines() == shown

"""Hostile YAML in a Dockfile or an env file: a clear, located error, never a traceback, never
an object built from a tag, never an unbounded read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockrion_schema import DockfileError, check_dockfile, load_dockspec

GOOD = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\nexpose: {}\n'
DEEP = "[" * 100_000 + "]" * 100_000


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_error(path: Path) -> tuple[str, str]:
    report = check_dockfile(path, environ={})
    assert not report.ok
    [issue] = report.errors
    return issue.code, str(issue).splitlines()[0]


def cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockrion_schema", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# (name, file written, content, code, first line of the message without the file name)
CASES = [
    (
        "unknown tag",
        "Dockfile.yaml",
        GOOD.replace('version: "1.0"', 'version: !custom "1.0"'),
        "YAML_TAG_NOT_ALLOWED",
        ":1:10 tag '!custom' is not allowed: unknown tag; a Dockfile holds only strings, "
        "numbers, booleans, null, lists and mappings; remove the tag (quote the value to keep "
        "it as text)",
    ),
    (
        "python name tag",
        "Dockfile.yaml",
        GOOD + "arguments:\n  run: !!python/name:os.system\n",
        "YAML_TAG_NOT_ALLOWED",
        ":6:8 tag '!!python/name:os.system' is not allowed: Python objects are never built "
        "from a Dockfile; remove the tag (quote the value to keep it as text)",
    ),
    (
        "python apply tag inside an extra field",
        "Dockfile.yaml",
        GOOD + "x-extra:\n  note: !!python/object/apply:os.system ['touch PWNED']\n",
        "YAML_TAG_NOT_ALLOWED",
        ":6:9 tag '!!python/object/apply:os.system' is not allowed: Python objects are never "
        "built from a Dockfile; remove the tag (quote the value to keep it as text)",
    ),
    (
        "python tag on a key",
        "Dockfile.yaml",
        GOOD + "metadata:\n  !!python/name:os.system : 1\n",
        "YAML_TAG_NOT_ALLOWED",
        ":6:3 tag '!!python/name:os.system' is not allowed: Python objects are never built "
        "from a Dockfile; remove the tag (quote the value to keep it as text)",
    ),
    (
        "python tag behind a merge key",
        "Dockfile.yaml",
        GOOD + "metadata:\n  <<: !!python/object:os.system {a: 1}\n",
        "YAML_TAG_NOT_ALLOWED",
        ":6:7 tag '!!python/object:os.system' is not allowed: Python objects are never built "
        "from a Dockfile; remove the tag (quote the value to keep it as text)",
    ),
    (
        "an integer past Python's digit limit",
        "Dockfile.yaml",
        GOOD.replace("expose: {}", "expose: {port: " + "9" * 5000 + "}"),
        "VALIDATION_ERROR",
        ":4:16 cannot read '" + "9" * 40 + "' as int: Exceeds the limit (4300 digits) for "
        "integer string conversion: value has 5000 digits",
    ),
    (
        "100,000-deep Dockfile",
        "Dockfile.yaml",
        GOOD + "arguments: " + DEEP + "\n",
        "LIMIT_EXCEEDED",
        ":5:76 nesting deeper than 64 levels",
    ),
    (
        "unknown tag in env.yaml",
        "env.yaml",
        "PORT: !custom 8080\n",
        "YAML_TAG_NOT_ALLOWED",
        ":1:7 tag '!custom' is not allowed: unknown tag; an env file holds only strings, "
        "numbers, booleans, null, lists and mappings; remove the tag (quote the value to keep "
        "it as text)",
    ),
    (
        "python tag in env.yaml",
        "env.yaml",
        "secrets:\n  KEY: !!python/object/apply:os.system ['touch PWNED']\n",
        "YAML_TAG_NOT_ALLOWED",
        ":2:8 tag '!!python/object/apply:os.system' is not allowed: Python objects are never "
        "built from an env file; remove the tag (quote the value to keep it as text)",
    ),
    (
        "100,000-deep env.yaml",
        "env.yaml",
        "KEY: " + DEEP + "\n",
        "LIMIT_EXCEEDED",
        ":1:70 nesting deeper than 64 levels",
    ),
    (
        "syntax error in env.yaml",
        "env.yml",
        "KEY: [unclosed\n",
        "YAML_SYNTAX_ERROR",
        ":1:6 YAML syntax error: '[' is never closed: the list that starts here needs a ']' "
        "(at line 2, column 1 expected ',' or ']', found the end of the file)",
    ),
    (
        "env file that is not UTF-8",
        ".env",
        b"KEY=caf\xe9\n",
        "VALIDATION_ERROR",
        ":1:8 file is not valid UTF-8 (byte 0xe9); save it as UTF-8",
    ),
]


def place(tmp_path: Path, name: str, content: str | bytes) -> tuple[Path, Path]:
    dockfile = tmp_path / "Dockfile.yaml"
    if name != "Dockfile.yaml":
        write(dockfile, GOOD)
    return dockfile, write(tmp_path / name, content)


@pytest.mark.parametrize(("case", "name", "content", "code", "expected"), CASES)
def test_python_api_gives_one_located_error(
    tmp_path: Path, case: str, name: str, content: str | bytes, code: str, expected: str
) -> None:
    dockfile, bad = place(tmp_path, name, content)
    assert one_error(dockfile) == (code, f"{bad}{expected}"), case
    with pytest.raises(DockfileError) as caught:
        load_dockspec(dockfile, environ={})
    assert [issue.code for issue in caught.value.issues] == [code]
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(("case", "name", "content", "code", "expected"), CASES)
def test_cli_gives_the_same_error_and_no_traceback(
    tmp_path: Path, case: str, name: str, content: str | bytes, code: str, expected: str
) -> None:
    dockfile, bad = place(tmp_path, name, content)
    result = cli(dockfile)
    assert result.returncode == 1, case
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"{bad}{expected}"
    assert result.stdout.splitlines()[-1] == f"{dockfile}: invalid (1 error)"
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["env.yaml", ".env", "Dockfile.yaml"])
def test_a_50_mb_file_is_refused_before_it_is_read(tmp_path: Path, name: str) -> None:
    dockfile, big = place(tmp_path, name, b"")
    with big.open("wb") as handle:
        handle.write(b"KEY: " + b"x" * (50 * 1024 * 1024) + b"\n")
    size = big.stat().st_size
    kind = "a Dockfile" if name == "Dockfile.yaml" else "an env file"
    expected = f"{big} file is {size} bytes, over the 1048576 byte limit for {kind}"
    assert one_error(dockfile) == ("LIMIT_EXCEEDED", expected)
    result = cli(dockfile)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == expected


def test_plain_data_tags_are_still_accepted(tmp_path: Path) -> None:
    dockfile = write(
        tmp_path / "Dockfile.yaml",
        GOOD.replace("expose: {}", "expose: {port: !!int '8081', host: !!str 127.0.0.1}")
        + "metadata: !!map {maintainer: !!str 42}\narguments: {since: 2024-01-02}\n",
    )
    (tmp_path / "env.yaml").write_text("PORT: !!str 1\nsecrets: {TOKEN: !!str abc}\n")
    spec = load_dockspec(dockfile, environ={})
    assert (spec.expose.port, spec.expose.host) == (8081, "127.0.0.1")
    assert spec.metadata is not None and spec.metadata.maintainer == "42"

"""Broken or hostile Dockfiles get one clear, located message, never a traceback or a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockrion_schema import DockfileError, check_dockfile, load_dockspec, parse_dockspec

GOOD = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\nexpose: {}\n'


def messages(path: Path) -> list[str]:
    return [str(issue) for issue in check_dockfile(path, environ={}).errors]


def write(tmp_path: Path, content: str | bytes, name: str = "Dockfile.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "\n# just a comment\n\n")
    assert messages(path) == [
        f"{path} file is empty; a Dockfile needs at least version, agent, io_schema and expose"
    ]


def test_root_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- version\n- agent\n")
    assert messages(path) == [
        f"{path}:1:1 the top level must be a mapping of sections (version, agent, io_schema, "
        "expose, ...), got a list"
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'version: "1.0"\nagent: {name: demo\nio_schema: {}\n')
    [message] = messages(path)
    assert message.startswith(f"{path}:2:8 YAML syntax error: '{{' is never closed")


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "expose: {port: 9000}\n")
    assert messages(path) == [
        f"{path}:5:1 duplicate key 'expose' (first defined at line 4); "
        "YAML would silently keep only the last one\n    expose: {port: 9000}\n    ^"
    ]


def test_nested_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("expose: {}", "expose:\n  port: 1\n  port: 2"))
    assert messages(path) == [
        f"{path}:6:3 duplicate key 'port' (first defined at line 5); "
        "YAML would silently keep only the last one\n      port: 2\n      ^"
    ]


def test_alias_expansion_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 10):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 9)}]")
    path = write(tmp_path, GOOD + "\n".join(lines) + "\n")
    [message] = messages(path)
    assert "expands to more than 100000 values (an alias expansion bomb?)" in message


def test_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, 'version: "1.0"\nagent:\n\tname: demo\n')
    assert messages(path) == [
        f"{path}:3:1 tab character in indentation; YAML indents with spaces only"
        "\n    \tname: demo\n    ^"
    ]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.encode() + b"metadata: {maintainer: Jos\xe9}\n")
    assert messages(path) == [f"{path}:5:27 file is not valid UTF-8 (byte 0xe9); save it as UTF-8"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + GOOD.encode())
    assert check_dockfile(path).ok


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "# " + "x" * (1024 * 1024) + "\n")
    [message] = messages(path)
    assert message.startswith(f"{path} file is ")
    assert message.endswith("bytes, over the 1048576 byte limit for a Dockfile")


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "metadata:\n  maintainer: ${OWNER_EMAIL}\n")
    assert messages(path) == [
        f"{path}:6:15 metadata.maintainer: environment variable 'OWNER_EMAIL' is not set; set "
        "it, put it in .env, or give a default with ${OWNER_EMAIL:-default}"
    ]


def test_missing_file(tmp_path: Path) -> None:
    assert messages(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'} file not found"]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "arguments: " + "[" * 200 + "]" * 200 + "\n")
    [message] = messages(path)
    assert "nesting deeper than 64 levels" in message


def test_recursive_alias_does_not_hang(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "arguments: &loop {self: *loop}\n")
    assert len(messages(path)) == 1


def test_load_dockspec_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'version: "1.0"\nagent: {name: Bad_Name, handler: "a:b"}\nio_schema: {}\n'
        "expose: {port: 0, streaming: grpc}\n",
    )
    with pytest.raises(DockfileError) as caught:
        load_dockspec(path)
    error = caught.value
    assert error.code == "VALIDATION_ERROR"
    assert [issue.path for issue in error.issues] == [
        "agent.name",
        "expose.port",
        "expose.streaming",
    ]
    assert str(error).startswith(f"3 problems in {path}:\n")


def test_parse_dockspec_without_a_file() -> None:
    spec = parse_dockspec(GOOD)
    assert spec.agent.name == "demo"


def test_a_problem_in_an_env_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, 'version: "1.0"\nagent: {name: ok, handler: "a:b"}\nio_schema: {}\n')
    env = write(tmp_path, "PORT: [8080\n", name="env.yaml")
    with pytest.raises(DockfileError) as caught:
        load_dockspec(tmp_path / "Dockfile.yaml")
    assert str(caught.value).startswith(f"1 problem in {env}:\n"), str(caught.value)

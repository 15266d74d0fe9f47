"""`dockrion-schema validate` and `json-schema` as a CI pipeline runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockrion_schema", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_file_exits_0_with_a_summary() -> None:
    result = run("validate", str(CORPUS / "good" / "minimal.yaml"))
    assert result.returncode == 0
    assert result.stdout.strip().endswith(
        "minimal.yaml: valid: agent 'minimal' (handler app:handle, framework custom); serves "
        "POST /invoke, POST /invoke/stream, /runs (memory backend); auth none"
    )


def test_invalid_file_exits_1_and_lists_errors() -> None:
    path = CORPUS / "bad" / "wrong-types.yaml"
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:3:21 io_schema.strict: must be true or false, got 'maybe'",
        f"{path}:4:16 expose.port: must be an integer, got 'eighty'",
        f"{path}:4:40 expose.cors.origins: must be a list, got '*'",
        f"{path}: invalid (3 errors)",
    ]


def test_several_files_one_bad_exits_1() -> None:
    result = run(
        "validate", str(CORPUS / "good" / "full.yaml"), str(CORPUS / "bad" / "bad-port.yaml")
    )
    assert result.returncode == 1
    assert "full.yaml: valid" in result.stdout
    assert "bad-port.yaml: invalid (1 error)" in result.stdout


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("validate").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("validate", "--format", "xml", "x.yaml").returncode == 2


def test_json_format_for_ci_annotations() -> None:
    path = CORPUS / "bad" / "heartbeat-zero.yaml"
    result = run("validate", "--format", "json", str(path))
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["valid"] is False
    [entry] = payload["files"]
    assert entry["errors"] == [
        {
            "severity": "error",
            "file": str(path),
            "line": 6,
            "column": 32,
            "path": "streaming.events.heartbeat_interval",
            "message": "must be between 1 and 300, got 0",
            "code": "VALIDATION_ERROR",
        }
    ]


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    path = tmp_path / "Dockfile.yaml"
    path.write_text(
        'version: "1.0"\nagent: {name: a, handler: "m:f"}\nio_schema: {}\nexpose: {}\nstreamin: {}\n'
    )
    assert run("validate", str(path)).returncode == 0
    result = run("validate", "--strict", str(path))
    assert result.returncode == 1
    assert "did you mean 'streaming'? [warning]" in result.stdout


def test_json_schema_command(tmp_path: Path) -> None:
    result = run("json-schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"version", "agent", "io_schema", "expose"}
    target = tmp_path / "schema.json"
    assert run("json-schema", "-o", str(target)).returncode == 0
    assert json.loads(target.read_text()) == schema


def test_validate_says_whether_an_entrypoint_is_a_factory_or_an_object(tmp_path: Path) -> None:
    # importing this module would fail loudly: validate must read it, never run it
    (tmp_path / "agent.py").write_text(
        "raise SystemExit('imported!')\n"
        "from langgraph.graph import StateGraph\n"
        "def build():\n    return make().compile()\n"
        "class Runner:\n    pass\n"
        "graph = build()\n"
        "alias = build\n"
    )
    expected = {
        "build": "entrypoint a factory (def build), called once at start-up",
        "Runner": "entrypoint a factory (class Runner), called once at start-up",
        "graph": "entrypoint an object (graph = build()), served as it is",
        "alias": "entrypoint bound to build; a factory or an object, told when served",
        "StateGraph": "entrypoint imported from langgraph.graph; a factory or an object, "
        "told when served",
        "missing": "entrypoint no 'missing' at the top level of agent.py; checked when served",
    }
    for name, phrase in expected.items():
        dockfile = tmp_path / f"{name}.yaml"
        dockfile.write_text(
            'version: "1.0"\n'
            f"agent: {{name: a, entrypoint: 'agent:{name}', framework: langgraph}}\n"
            "io_schema: {input: {type: object}}\nexpose: {}\n"
        )
        result = run("validate", str(dockfile))
        assert result.returncode == 0, result.stdout
        assert f"; {phrase};" in result.stdout, result.stdout
        assert "imported!" not in result.stdout + result.stderr
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(
        'version: "1.0"\n'
        "agent: {name: a, entrypoint: 'pkg.nowhere:build', framework: langgraph}\n"
        "io_schema: {input: {type: object}}\nexpose: {}\n"
    )
    assert "entrypoint module not found beside the Dockfile; checked when served" in (
        run("validate", str(elsewhere)).stdout
    )

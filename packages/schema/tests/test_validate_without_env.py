"""`dockrion-schema validate` in CI, where deployment variables are not set: an unset `${VAR}`
is a warning naming the variable and the field unless `--require-env` is given; loading for
serving (`load_dockspec`) still refuses the file, naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockrion_schema import DockfileError, check_dockfile, load_dockspec

HEAD = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'
SHORTEST_REDIS = HEAD + "expose: {}\nstreaming: {backend: redis}\n"
REDIS_WARNING = (
    "5:22 streaming.redis.url: environment variable 'REDIS_URL' is not set (the default of "
    "streaming.redis.url is ${REDIS_URL}): this value is not checked, and serving needs it "
    "(set it, put it in .env, or write streaming.redis.url)"
)
SUMMARY = (
    "valid: agent 'demo' (handler app:handle, framework custom); serves POST /invoke, "
    "POST /invoke/stream, /runs (redis backend); auth none"
)


def dockfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockfile.yaml"
    path.write_text(text)
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # CI has no deployment environment: run with no variable the Dockfiles here use.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORT", "OWNER")}
    return subprocess.run(
        [sys.executable, "-m", "dockrion_schema", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_shortest_redis_dockfile_is_valid_with_no_environment(tmp_path: Path) -> None:
    path = dockfile(tmp_path, SHORTEST_REDIS)
    report = check_dockfile(path, environ={}, require_env=False)
    assert report.ok and not report.errors
    assert [str(issue) for issue in report.warnings] == [f"{path}:{REDIS_WARNING}"]
    assert report.unchecked == ["streaming.redis.url"]
    assert report.spec is not None and report.spec.streaming is not None
    assert report.spec.streaming.redis is not None
    assert report.spec.streaming.redis.url == "${REDIS_URL}"


def test_shortest_redis_dockfile_from_the_cli_text_and_json(tmp_path: Path) -> None:
    path = dockfile(tmp_path, SHORTEST_REDIS)
    result = cli(str(path))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        f"{path}:{REDIS_WARNING} [warning]",
        f"{path}: {SUMMARY}; not checked until their variables are set: streaming.redis.url",
    ]
    result = cli("--format", "json", str(path))
    assert result.returncode == 0
    payload = json.loads(result.stdout)
    assert payload["valid"] is True
    [entry] = payload["files"]
    assert entry["errors"] == []
    assert entry["unchecked"] == ["streaming.redis.url"]
    assert entry["warnings"] == [
        {
            "severity": "warning",
            "file": str(path),
            "line": 5,
            "column": 22,
            "path": "streaming.redis.url",
            "message": REDIS_WARNING.split(" ", 2)[2],
            "code": "MISSING_ENV_VAR",
        }
    ]


def test_require_env_and_serving_refuse_the_shortest_redis_dockfile(tmp_path: Path) -> None:
    path = dockfile(tmp_path, SHORTEST_REDIS)
    result = cli("--require-env", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:5:22 streaming.redis.url: environment variable 'REDIS_URL' is not set (the "
        "default of streaming.redis.url is ${REDIS_URL}); set it, put it in .env, or write "
        "streaming.redis.url",
        f"{path}: invalid (1 error)",
    ]
    with pytest.raises(DockfileError) as caught:
        load_dockspec(path, environ={})
    [issue] = caught.value.issues
    assert (issue.path, issue.code) == ("streaming.redis.url", "MISSING_ENV_VAR")
    assert "'REDIS_URL' is not set" in issue.message
    spec = load_dockspec(path, environ={"REDIS_URL": "redis://127.0.0.1:6390/0"})
    assert spec.streaming is not None and spec.streaming.redis is not None
    assert spec.streaming.redis.url == "redis://127.0.0.1:6390/0"


def test_explicit_variable_is_a_warning_and_an_error_with_require_env(tmp_path: Path) -> None:
    path = dockfile(tmp_path, HEAD + "expose: {}\nmetadata:\n  maintainer: ${OWNER}\n")
    result = cli(str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        f"{path}:6:15 metadata.maintainer: environment variable 'OWNER' is not set: this value "
        "is not checked, and serving needs it (set it, put it in .env, or give a default with "
        "${OWNER:-default}) [warning]"
    )
    strict = cli("--require-env", str(path))
    assert strict.returncode == 1
    assert strict.stdout.splitlines() == [
        f"{path}:6:15 metadata.maintainer: environment variable 'OWNER' is not set; set it, "
        "put it in .env, or give a default with ${OWNER:-default}",
        f"{path}: invalid (1 error)",
    ]
    # --strict fails on every warning, unset variables included.
    assert cli("--strict", str(path)).returncode == 1
    with pytest.raises(DockfileError) as caught:
        load_dockspec(path, environ={})
    assert [issue.path for issue in caught.value.issues] == ["metadata.maintainer"]


def test_a_port_from_an_unset_variable_is_unchecked_and_checked_once_known(
    tmp_path: Path,
) -> None:
    path = dockfile(tmp_path, HEAD + "expose:\n  port: ${PORT}\n")
    report = check_dockfile(path, environ={}, require_env=False)
    assert report.ok
    assert report.unchecked == ["expose.port"]
    assert [issue.path for issue in report.warnings] == ["expose.port"]
    # The spec is built with the field's default while its real value is unknown.
    assert report.spec is not None and report.spec.expose.port == 8080
    known = check_dockfile(path, environ={"PORT": "70000"}, require_env=False)
    assert [str(issue) for issue in known.errors] == [
        f"{path}:5:9 expose.port: must be between 1 and 65535, got 70000"
    ]
    assert known.unchecked == []
    result = cli(str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1].endswith(
        "; not checked until their variables are set: expose.port"
    )


def test_other_mistakes_still_fail_without_the_environment(tmp_path: Path) -> None:
    path = dockfile(tmp_path, HEAD + "expose:\n  port: ${PORT}\n  rest: maybe\n")
    report = check_dockfile(path, environ={}, require_env=False)
    assert [str(issue) for issue in report.errors] == [
        f"{path}:6:9 expose.rest: must be true or false, got 'maybe'"
    ]
    assert report.unchecked == ["expose.port"]
    assert cli(str(path)).returncode == 1


def test_a_required_field_waiting_for_a_variable(tmp_path: Path) -> None:
    path = dockfile(
        tmp_path,
        HEAD.replace('"app:handle"', '"${HANDLER}"') + "expose: {}\n",
    )
    report = check_dockfile(path, environ={}, require_env=False)
    assert report.ok and report.spec is None
    assert report.unchecked == ["agent.handler"]
    result = cli(str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == (
        f"{path}: valid (not checked until their variables are set: agent.handler)"
    )
    with pytest.raises(DockfileError) as caught:
        report.raise_for_errors()
    assert [issue.path for issue in caught.value.issues] == ["agent.handler"]


def test_env_files_beside_the_dockfile_still_count(tmp_path: Path) -> None:
    path = dockfile(tmp_path, SHORTEST_REDIS)
    (tmp_path / ".env").write_text("REDIS_URL=redis://cache:6379/0\n")
    result = cli(str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"{path}: {SUMMARY}"]


def test_a_sentinel_dockfile_needs_no_redis_url(tmp_path: Path) -> None:
    # With Sentinel the address comes from the Sentinels: the default URL (and its
    # variable) does not apply, so nothing is unchecked and serving needs no REDIS_URL.
    text = HEAD + (
        "expose: {}\nstreaming:\n  backend: redis\n  redis:\n"
        "    sentinel: {service_name: mymaster, sentinels: ['127.0.0.1:26379']}\n"
    )
    path = dockfile(tmp_path, text)
    report = check_dockfile(path, environ={})
    assert report.ok and report.warnings == [] and report.unchecked == []
    spec = load_dockspec(path, environ={})
    assert spec.streaming is not None and spec.streaming.redis is not None
    sentinel = spec.streaming.redis.sentinel
    assert sentinel is not None
    assert (sentinel.service_name, sentinel.sentinels) == ("mymaster", ["127.0.0.1:26379"])


def test_the_readme_shows_what_the_cli_prints(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### Validation without the deployment environment") :]
    start = section.index("```console\n") + len("```console\n")
    command, *shown = section[start : section.index("```", start)].splitlines()
    assert command == "$ dockrion-schema validate Dockfile.yaml"
    dockfile(tmp_path, SHORTEST_REDIS)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "dockrion_schema", "validate", "Dockfile.yaml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert result.stdout.splitlines() == shown

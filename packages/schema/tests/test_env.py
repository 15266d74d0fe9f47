"""`${VAR}` substitution and env-file precedence: shell > --env-file > .env > env.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockrion_schema import DockfileError, check_dockfile, load_dockspec, parse_dockspec

DOCKFILE = (
    'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'
    "expose:\n  port: ${PORT}\nmetadata:\n  maintainer: ${OWNER:-nobody}\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Dockfile.yaml").write_text(DOCKFILE)
    return tmp_path


def test_env_yaml_is_the_lowest_file(project: Path) -> None:
    (project / "env.yaml").write_text("PORT: 7001\nsecrets:\n  OWNER: yaml-owner\n")
    spec = load_dockspec(project / "Dockfile.yaml", environ={})
    assert (spec.expose.port, spec.metadata and spec.metadata.maintainer) == (7001, "yaml-owner")


def test_dotenv_beats_env_yaml(project: Path) -> None:
    (project / "env.yaml").write_text("PORT: 7001\n")
    (project / ".env").write_text("# local\nexport PORT=7002\nOWNER='dot env'\n")
    spec = load_dockspec(project / "Dockfile.yaml", environ={})
    assert spec.expose.port == 7002
    assert spec.metadata is not None and spec.metadata.maintainer == "dot env"


def test_env_file_beats_dotenv_and_shell_beats_everything(project: Path) -> None:
    (project / ".env").write_text("PORT=7002\n")
    (project / "prod.env").write_text("PORT=7003\n")
    path = project / "Dockfile.yaml"
    assert load_dockspec(path, env_file=project / "prod.env", environ={}).expose.port == 7003
    shell = {"PORT": "7004"}
    assert load_dockspec(path, env_file=project / "prod.env", environ=shell).expose.port == 7004


def test_env_file_relative_to_the_dockfile(project: Path) -> None:
    (project / "prod.env").write_text("PORT=7005\n")
    spec = load_dockspec(project / "Dockfile.yaml", env_file="prod.env", environ={})
    assert spec.expose.port == 7005


def test_missing_env_file_is_an_error(project: Path) -> None:
    report = check_dockfile(project / "Dockfile.yaml", env_file="nope.env", environ={})
    assert [issue.message for issue in report.errors] == ["env file not found: nope.env"]


def test_malformed_dotenv_line_is_located(project: Path) -> None:
    (project / ".env").write_text("PORT=1\nthis is not an assignment\n")
    report = check_dockfile(project / "Dockfile.yaml", environ={})
    assert [str(issue) for issue in report.errors] == [
        f"{project / '.env'}:2:1 expected KEY=value, got 'this is not an assignment'"
    ]


def test_defaults_empty_defaults_and_escapes() -> None:
    text = (
        'version: "1.0"\nagent: {name: demo, handler: "a:b", description: "${EMPTY:-}|$${LITERAL}"}\n'
        "io_schema: {}\nexpose: {host: '${HOST:-127.0.0.1}', port: '80${SUFFIX}'}\n"
    )
    spec = parse_dockspec(text, environ={"SUFFIX": "81"})
    assert spec.agent.description == "|${LITERAL}"
    assert (spec.expose.host, spec.expose.port) == ("127.0.0.1", 8081)


def test_set_but_empty_variable_gives_empty_string() -> None:
    text = DOCKFILE.replace("${PORT}", "8080")
    spec = parse_dockspec(text, environ={"OWNER": ""})
    assert spec.metadata is not None and spec.metadata.maintainer == ""


def test_every_missing_variable_is_reported() -> None:
    text = DOCKFILE.replace("${OWNER:-nobody}", "${OWNER}")
    with pytest.raises(DockfileError) as caught:
        parse_dockspec(text, "Dockfile.yaml", environ={})
    assert [(issue.path, issue.code) for issue in caught.value.issues] == [
        ("expose.port", "MISSING_ENV_VAR"),
        ("metadata.maintainer", "MISSING_ENV_VAR"),
    ]


def test_keys_are_not_substituted() -> None:
    text = DOCKFILE.replace("${PORT}", "1") + "arguments: {'${KEY}': 1}\n"
    spec = parse_dockspec(text, environ={"KEY": "nope", "OWNER": "x"})
    assert spec.arguments == {"${KEY}": 1}


def test_redis_url_default_is_expanded() -> None:
    text = DOCKFILE.replace("${PORT}", "1") + "streaming: {backend: redis}\n"
    spec = parse_dockspec(text, environ={"REDIS_URL": "redis://127.0.0.1:6390/0"})
    assert spec.streaming is not None and spec.streaming.redis is not None
    assert spec.streaming.redis.url == "redis://127.0.0.1:6390/0"
    with pytest.raises(DockfileError) as caught:
        parse_dockspec(text, "Dockfile.yaml", environ={})
    assert [issue.path for issue in caught.value.issues] == ["streaming.redis.url"]
    assert "'REDIS_URL' is not set" in caught.value.issues[0].message

"""The documentation's examples, run against a live server: every fenced block preceded
by a `<!-- test -->` comment in docs/ (optionally `<!-- test expect="text" -->`: the output
must contain it). `http://localhost:8080` is replaced by the live server's URL. Python
blocks run in-process, shell and console blocks (the `$ ` lines) in bash, JavaScript in
Node.js. Also: the generated references cover every Dockfile key."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockrion_runtime import create_app

from .conftest import serve_app

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
QUICKSTART = ROOT / "examples" / "quickstart" / "Dockfile.yaml"
MARKER = re.compile(r'^<!--\s*test(?:\s+expect="((?:[^"\\]|\\.)*)")?\s*-->\s*$')
FENCE = re.compile(r"^```(\w+)")
PLACEHOLDERS = ("http://localhost:8080", "http://127.0.0.1:8080")


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    language: str
    code: str
    expect: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def examples() -> list[Example]:
    found: list[Example] = []
    for path in sorted(DOCS.rglob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            marker = MARKER.match(line.strip())
            if not marker:
                continue
            fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
            assert fence, f"{path}:{index + 1}: a test marker must be right above a code fence"
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            expect = marker.group(1)
            found.append(
                Example(
                    path.relative_to(DOCS).as_posix(),
                    index + 2,
                    fence.group(1),
                    "\n".join(lines[index + 2 : end]) + "\n",
                    expect.replace('\\"', '"') if expect is not None else None,
                )
            )
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_app(create_app(QUICKSTART)) as url:
        yield url


def need(program: str) -> None:
    if shutil.which(program) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is not installed; .ci/run must install it")
        pytest.skip(f"{program} is not installed")


def console_commands(code: str) -> str:
    """The commands of a console transcript: `$ ` lines and their `\\` continuations."""
    commands: list[str] = []
    continued = False
    for line in code.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line[2:] if line.startswith("$ ") else line)
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


def run(example: Example, url: str, tmp_path: Path) -> str:
    code = example.code
    for placeholder in PLACEHOLDERS:
        code = code.replace(placeholder, url)
    if example.language == "python":
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(example), "exec"), {"__name__": "__docs__"})
        return out.getvalue()
    if example.language in ("bash", "sh", "console"):
        script = console_commands(code) if example.language == "console" else code
        assert script.strip(), f"{example}: no command to run"
        need("curl")
        if "jq " in script:
            need("jq")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{example}: {result.stderr}"
        return result.stdout
    if example.language in ("javascript", "js"):
        need("node")
        script = tmp_path / "example.mjs"
        script.write_text(code)
        result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{example}: {result.stderr}"
        return result.stdout
    raise AssertionError(f"{example}: no runner for ```{example.language}")


def test_the_docs_have_tested_examples() -> None:
    pages = {example.page for example in EXAMPLES}
    assert {"quickstart.md", "recipes.md"} <= pages
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example(example: Example, base_url: str, tmp_path: Path) -> None:
    output = run(example, base_url, tmp_path)
    assert output.strip(), f"{example}: printed nothing"
    if example.expect is not None:
        assert example.expect in output, f"{example}: {example.expect!r} not in\n{output}"


def test_the_root_readme_stays_short_and_ci_runs_its_test_command() -> None:
    # What it is, the command that serves the quickstart (and the curl to try it), the one
    # that runs every test, a link to the docs: the rest lives on the site.
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("$ ")]
    assert [c.split()[1:3] for c in commands] == [
        ["hatch", "run"],
        ["curl", "-N"],
        ["hatch", "test"],
    ]
    assert "(docs/index.md)" in readme
    assert len(readme.splitlines()) <= 50
    test_command = commands[-1].removeprefix("$ ")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_installs_the_three_packages_from_the_clone_in_one_command() -> None:
    # Before the packages are on PyPI, `pip install dockrion-runtime` fails: the README's
    # line must name the three package folders, so pip finds the runtime's pinned
    # siblings in the same command and needs an index only for third-party packages.
    import tomllib

    readme = (ROOT / "README.md").read_text()
    line = next(m for m in re.findall(r"`(pip install [^`]+)`", readme) if "./packages" in m)
    folders = line.split()[2:]
    names = {}
    for folder in folders:
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
        names[project["name"]] = project
    assert set(names) == {"dockrion-schema", "dockrion-events", "dockrion-runtime"}
    pinned = {
        d.split("==")[0].split("[")[0]
        for d in names["dockrion-runtime"]["dependencies"]
        if d.startswith("dockrion-")
    }
    assert pinned <= set(names)
    quickstart = (DOCS / "quickstart.md").read_text()
    assert f"$ {line}" in quickstart  # the quick start shows the same command


# --- the generated references ---------------------------------------------------------------


def hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dockfile_reference_has_every_key_of_every_section() -> None:
    from dockrion_schema.dockfile_v1 import SECTION_MODELS

    reference = hooks().dockfile_reference()
    for model in SECTION_MODELS:
        for name in model.model_fields:
            assert f"| `{name}` |" in reference, (model.__name__, name)
    assert "| `playground` | boolean | `true` |" in reference


def test_the_stream_context_reference_shows_the_agent_api() -> None:
    reference = hooks().stream_context_reference()
    assert "await context.emit_token(content: str" in reference
    assert "context.sync_emit(event_type: str" in reference


def test_the_events_reference_has_every_event_type_and_field() -> None:
    from dockrion_events.filter import PRESETS
    from dockrion_events.models import EVENT_CLASSES, BaseEvent

    module = hooks()
    assert all(marker in (DOCS / "events.md").read_text() for marker in module.EVENT_MARKERS)
    types = module.event_types_reference()
    for kind, model in EVENT_CLASSES.items():
        [row] = [line for line in types.splitlines() if line.startswith(f"| `{kind}` |")]
        for name in set(model.model_fields) - set(BaseEvent.model_fields):
            assert f"`{name}` (" in row, (kind, name)
    presets = module.event_presets_reference()
    assert all(f"| `{name}`" in presets for name in PRESETS)
    assert "| `chat` | `token` |" in presets


def test_the_permission_table_is_the_route_table() -> None:
    from dockrion_runtime.routes import ROUTE_TABLE

    module = hooks()
    assert module.PERMISSIONS_MARKER in (DOCS / "security.md").read_text()
    rows = module.permissions_reference().splitlines()[2:]
    for endpoint in ROUTE_TABLE:
        method = "WS" if endpoint.kind == "websocket" else endpoint.method
        [row] = [line for line in rows if f"`{method} {endpoint.path}`" in line]
        permission = row.split(" | ")[1]
        assert permission == (f"`{endpoint.permission}`" if endpoint.permission else "none")
        assert ("public" in row) == (not endpoint.protected), row


def test_the_navigation_keeps_existing_pages_and_lists_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A")
    (tmp_path / "extra.md").write_text("# Extra")
    nav = [
        {"Home": "a.md"},
        {"Gone": [{"Absent": "absent.md"}]},
        {"Reference": [{"Dockfile": "reference/dockfile.md"}]},
    ]
    config = hooks().on_config({"docs_dir": str(tmp_path), "nav": nav})
    assert config["nav"] == [
        {"Home": "a.md"},
        {"Reference": [{"Dockfile": "reference/dockfile.md"}]},
        {"More": ["extra.md"]},
    ]

"""docs/mcp.md's examples against a live server (the quick-start agent with `expose.mcp`
on and an API key): every block after a `<!-- mcp-example -->` comment runs, or (the
client configurations) parses and reaches the endpoint with its URL and headers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("mcp")

from .mcp_client import WAIT, session

ROOT = Path(__file__).resolve().parents[3]
DOCS_KEY = "docs-key-0123456789"


def doc_examples() -> list[tuple[str, str]]:
    """(language, code) of each fenced block after a `<!-- mcp-example -->` in docs/mcp.md."""
    lines = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8").splitlines()
    found: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        if line.strip() == "<!-- mcp-example -->":
            language = lines[index + 1].removeprefix("```")
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            found.append((language, "\n".join(lines[index + 2 : end]) + "\n"))
    return found


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The quick-start agent with `expose.mcp` on and an API key: what docs/mcp.md shows."""
    folder = tmp_path_factory.mktemp("mcp-docs")
    example = ROOT / "examples" / "quickstart"
    text = (example / "Dockfile.yaml").read_text()
    text = text.replace("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  mcp: {enabled: true}\n")
    (folder / "Dockfile.yaml").write_text(text + "auth: {mode: api_key}\n")
    (folder / "agent.py").write_text((example / "agent.py").read_text())
    sys.modules.pop("agent", None)
    app = create_app(folder / "Dockfile.yaml", environ={"DOCKRION_API_KEY": DOCS_KEY})
    with serve_app(app) as base:
        yield base
    sys.modules.pop("agent", None)


def test_the_page_has_its_examples() -> None:
    assert [language for language, _ in doc_examples()] == ["json", "json", "python", "console"]


def test_the_client_configurations_point_at_a_working_endpoint(quickstart: str) -> None:
    cursor, claude = (json.loads(code) for _, code in doc_examples()[:2])
    [(name, server)] = cursor["mcpServers"].items()
    assert server["url"] == "http://localhost:8080/mcp"
    headers = {
        header: value.replace("${env:DOCKRION_API_KEY}", DOCS_KEY)
        for header, value in server["headers"].items()
    }
    [(_, bridge)] = claude["mcpServers"].items()
    assert bridge["command"] == "npx" and bridge["args"][:2] == ["mcp-remote", server["url"]]
    flag, header = bridge["args"][2:]
    assert flag == "--header"
    field, _, value = header.partition(": ")
    bearer = {field: value.replace("${DOCKRION_API_KEY}", DOCS_KEY)}

    async def listed(credentials: dict[str, str]) -> list[str]:
        url = server["url"].replace("http://localhost:8080", quickstart)
        async with session(url, credentials) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    for credentials in (headers, bearer):
        assert anyio.run(listed, credentials) == [name]


def test_the_python_example_runs(quickstart: str, monkeypatch: pytest.MonkeyPatch) -> None:
    [(_, code)] = [example for example in doc_examples() if example[0] == "python"]
    code = code.replace("http://localhost:8080", quickstart)
    monkeypatch.setenv("DOCKRION_API_KEY", DOCS_KEY)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # in this process: the SDK is imported already
        exec(compile(code, "docs/mcp.md", "exec"), {"__name__": "__docs__"})
    assert out.getvalue().splitlines() == [
        "tools: ['quickstart']",
        "progress: hello",
        "progress: echo",
        "progress:  from",
        "progress: echo",
        "progress:  MCP",
        "progress: echo",
        "result: {'answer': 'hello from MCP', 'words': 3}",
    ]


def test_the_curl_example_runs(quickstart: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    [(_, code)] = [example for example in doc_examples() if example[0] == "console"]
    commands: list[str] = []
    continued = False
    for line in code.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line.removeprefix("$ "))
            continued = line.endswith("\\")
    script = "\n".join(commands).replace("http://localhost:8080", quickstart)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "DOCKRION_API_KEY": DOCS_KEY},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("data: "))
    assert answer["id"] == 2
    assert answer["result"]["structuredContent"] == {"answer": "hi there", "words": 2}
    assert '"method":"notifications/progress"' in result.stdout

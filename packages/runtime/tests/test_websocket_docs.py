"""The client snippets of docs/websocket.md, as they are on the page, against a live
`dockrion-runtime serve`: every JavaScript block in headless Chromium and in Node.js's
built-in WebSocket, every Python block with `websockets`. `ws://localhost:8080` becomes
the live server's address; the keys the snippets use are the server's keys."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_page import CHROMIUM, run_page
from .conftest import kill_server, start_server, write_project
from .test_websocket_clients import needs_node, node_command

PAGE = Path(__file__).resolve().parents[3] / "docs" / "websocket.md"
PLACEHOLDER = "ws://localhost:8080"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The keys the snippets send (api_keys.prefix team).
KEYS = {"TEAM_API_KEY_ALICE": "alice-key-1", "TEAM_API_KEY_DEMO": "demo-key"}


def snippets(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(PAGE.read_text()) if lang == language]


def test_the_page_has_a_browser_and_a_python_snippet() -> None:
    assert len(snippets("js")) == 1 and len(snippets("python")) == 1


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dockrion-runtime serve` with WebSockets and API keys; its ws:// base URL."""
    directory = tmp_path_factory.mktemp("ws-docs")
    extra = (
        "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n"
        "auth: {mode: api_key, api_keys: {prefix: team}}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in KEYS.items():
            patch.setenv(name, value)
        process, url = start_server(write_project(directory, "echo", extra))
    try:
        yield "ws" + url.removeprefix("http")
    finally:
        kill_server(process)


@pytest.mark.parametrize("code", snippets("python"))
def test_python_snippet(code: str, live: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code.replace(PLACEHOLDER, live))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "closed 1000"
    assert "'type': 'token'" in result.stdout and "'type': 'complete'" in lines[-2]


# Collects what the snippet logs; reports once it logs its close.
HARNESS = """<!doctype html><meta charset="utf-8"><title>snippet</title>
<script>
const lines = [];
for (const level of ["log", "error"]) {
  console[level] = (...parts) => {
    const line = parts.join(" ");
    lines.push(line);
    if (line.startsWith("closed")) {
      fetch("/report", {method: "POST", body: JSON.stringify({lines})});
    }
  };
}
</script>
<script>
SNIPPET
</script>"""


def check_js_output(lines: list[str]) -> None:
    assert lines[-1].startswith("closed 1000"), lines
    assert lines[0] == "hello"  # the one token of {query: "hello"}, from the echo agent
    assert not any(line.startswith("refused") for line in lines)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("code", snippets("js"))
def test_browser_snippet_in_chromium(code: str, live: str, tmp_path: Path) -> None:
    page = HARNESS.replace("SNIPPET", code.replace(PLACEHOLDER, live))
    report = run_page(page, tmp_path / "profile")
    check_js_output(report["lines"])


@needs_node
@pytest.mark.parametrize("code", snippets("js"))
def test_browser_snippet_in_node(code: str, live: str, tmp_path: Path) -> None:
    command = node_command()
    assert command is not None
    script = tmp_path / "snippet.mjs"
    script.write_text(code.replace(PLACEHOLDER, live))
    result = subprocess.run([*command, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    check_js_output(result.stdout.splitlines())

"""LangGraph's JavaScript client, `@langchain/langgraph-sdk`'s `Client` under Node.js
(installed from npm at pinned versions into the pytest cache, once), against the LangGraph
Server API of the react example: a streamed run in every mode and the thread's state, a
background run joined, cut and joined again from its last id, an interrupt resumed with a
command, thread search; and its React hook `useStream`, rendered by React in a jsdom
document, through a chat turn with a tool call and an approval."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockrion_runtime import create_app

from .conftest import serve_app
from .npm_packages import install_npm_package

pytest.importorskip("langgraph")

SCRIPT = Path(__file__).with_name("langgraph_sdk_client.cjs")
USE_STREAM = Path(__file__).with_name("use_stream_client.cjs")
# useStream rendered by React in a jsdom document (jsdom 26: the last for Node.js 20)
REACT = ("react@19.3.1", "react-dom@19.3.1", "jsdom@26.1.0", "@langchain/core@1.5.0")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
# the 1.x line agent-chat-ui's scaffold depends on, and the current major
VERSIONS = ["1.17.0", "2.0.0"]

# The first test of each version also installs the client with npm (given 600 s).
pytestmark = pytest.mark.timeout(720)


@pytest.fixture(scope="module")
def react_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("react-langgraph-js")
    text = (EXAMPLE / "Dockfile.yaml").read_text()
    text = text.replace("expose:\n", "expose:\n  langgraph_api:\n    enabled: true\n", 1)
    auth = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
    (folder / "Dockfile.yaml").write_text(text + auth)
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    environ = {"TEAM_API_KEY_ALICE": "key-alice"}
    with serve_app(create_app(folder / "Dockfile.yaml", environ=environ)) as base:
        yield base


def run_client(modules: Path, url: str, topic: str) -> Any:
    config = {
        "apiUrl": f"{url}/lg",
        "apiKey": "key-alice",
        "assistant": "langgraph-react",
        "topic": topic,
    }
    done = subprocess.run(
        ["node", str(SCRIPT), str(modules), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_javascript_client_runs_every_flow(
    version: str, react_url: str, request: pytest.FixtureRequest
) -> None:
    modules = install_npm_package(request, "@langchain/langgraph-sdk", version)
    seen = run_client(modules, react_url, f"js-{version}")
    stream = seen["stream"]
    events = [part["event"] for part in stream]
    assert events[0] == "metadata" and {"messages", "values", "updates"} <= set(events)
    chunks = [part["data"] for part in stream if part["event"] == "messages"]
    text = "".join(chunk["content"] for chunk, _ in chunks)
    assert text == "Let me check the weather.Here is what I found: 18°C and sunny."
    final = [part["data"] for part in stream if part["event"] == "values"][-1]
    assert {chunk["id"] for chunk, _ in chunks} == {
        final["messages"][1]["id"],
        final["messages"][3]["id"],
    }
    assert seen["state"]["values"] == final
    assert [t["thread_id"] for t in seen["search"]] == [seen["thread"]["thread_id"]]
    join = seen["join"]
    cut = [(p["id"], p["event"]) for p in join["first"] + join["rest"]]
    assert cut == [(p["id"], p["event"]) for p in join["whole"]]
    assert len({p["id"] for p in join["whole"]}) == len(join["whole"])
    assert seen["interrupted"]["__interrupt__"][0]["value"]["action"] == "send_email"
    assert seen["interruptedThread"]["status"] == "interrupted"
    resumed = [p["data"] for p in seen["resumed"] if p["event"] == "values"][-1]
    assert "email to ana@example.com sent" in [m["content"] for m in resumed["messages"]]
    assert seen["resumedThread"]["status"] == "idle"
    assert [run["status"] for run in seen["runs"]] == ["success", "interrupted"]


def test_use_stream_renders_a_tool_call_and_an_approval(
    react_url: str, request: pytest.FixtureRequest
) -> None:
    modules = install_npm_package(request, "@langchain/langgraph-sdk", VERSIONS[0], *REACT)
    config = {"apiUrl": f"{react_url}/lg", "apiKey": "key-alice", "assistant": "langgraph-react"}
    done = subprocess.run(
        ["node", str(USE_STREAM), str(modules), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout)
    # one line per message: the streamed chunks and the state's messages are one
    assert seen["tool"]["lines"] == [
        "human: what is the weather in Paris?",
        "ai: Let me check the weather. [tool get_weather]",
        "tool: 18°C and sunny",
        "ai: Here is what I found: 18°C and sunny.",
    ]
    waiting = seen["waiting"]
    assert waiting["lines"][-1] == "ai: I will draft that email. [tool send_email]"
    assert json.loads(waiting["approval"])["question"] == "Send it?"
    approved = seen["approved"]
    assert approved["approval"] is None and approved["error"] is None
    assert approved["lines"][-2:] == [
        "tool: email to ana@example.com sent",
        "ai: Here is what I found: email to ana@example.com sent.",
    ]


PAGE = Path(__file__).resolve().parents[3] / "docs" / "langgraph-clients.md"
JS_BLOCK = re.compile(
    r"^<!-- test-langgraph -->\n```javascript\n(.*?)^```", re.MULTILINE | re.DOTALL
)


def test_the_page_javascript_example_runs(react_url: str, request: pytest.FixtureRequest) -> None:
    modules = install_npm_package(request, "@langchain/langgraph-sdk", VERSIONS[0])
    [code] = JS_BLOCK.findall(PAGE.read_text())
    # beside node_modules, so that the import resolves as in a project
    script = modules.parent / f"example-{uuid.uuid4().hex}.mjs"
    script.write_text(code.replace("http://localhost:8080", react_url))
    try:
        done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=120)
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Here is what I found: 18°C and sunny." in done.stdout

"""A real AG-UI front end against a live server: `@ag-ui/client`'s `HttpAgent` under Node
(installed from npm at a pinned version into the pytest cache, once) runs a handler agent
and the LangGraph react example, and gets their text, tool calls and results, an
interrupt and its resume, and the conversation it builds from them; the front end's tools
and context reach a graph that declares them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockrion_runtime import create_app

from .conftest import serve_app
from .npm_packages import install_npm_package
from .test_ag_ui_input import CONTEXT, GRAPH, TOOLS, dockfile

pytest.importorskip("langgraph")
pytest.importorskip("ag_ui.core")

AG_UI_CLIENT = "1.0.0"  # @ag-ui/client, the release matching ag-ui-protocol 1.0
SCRIPT = Path(__file__).with_name("ag_ui_client.cjs")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
KEY = {"X-API-Key": "key-alice"}
AG_UI_WORDS = re.compile(r"\b(RUN|TEXT_MESSAGE|TOOL_CALL|STEP|STATE|MESSAGES)_[A-Z]+")


# The first test also installs @ag-ui/client with npm (given 600 s) in its session fixture.
pytestmark = pytest.mark.timeout(720)


@pytest.fixture(scope="session")
def client_modules(request: pytest.FixtureRequest) -> Path:
    """node_modules holding `@ag-ui/client` at AG_UI_CLIENT (and what it depends on)."""
    return install_npm_package(request, "@ag-ui/client", AG_UI_CLIENT)


def run_client(modules: Path, url: str, turns: list[dict[str, Any]], **config: Any) -> Any:
    """Run the turns in one HttpAgent (one thread, one client-side conversation)."""
    config = {"url": f"{url}/ag-ui", "headers": {}, "threadId": "t", "turns": turns, **config}
    done = subprocess.run(
        ["node", str(SCRIPT), str(modules), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # the client warns on stderr about events it cannot place (an unknown message id...)
    complaints = [line for line in done.stderr.splitlines() if AG_UI_WORDS.search(line)]
    assert not complaints, complaints
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def react_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("react-ag-ui-client")
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        (EXAMPLE / "Dockfile.yaml").read_text()
        + "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
    )
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    environ = {"TEAM_API_KEY_ALICE": KEY["X-API-Key"]}
    with serve_app(create_app(dockfile, environ=environ)) as base:
        yield base


HANDLER = """
from dockrion_events import StreamContext

async def answer(payload, context: StreamContext):
    for word in payload["query"].split():
        await context.emit_token(word + " ")
    return {"answer": payload["query"].upper(), "thread": context.thread_id}
"""


def test_http_agent_gets_a_handler_agents_text_and_result(
    client_modules: Path, serve: Callable[..., str]
) -> None:
    base = serve(
        "answer",
        "expose:\n  host: 127.0.0.1\n  ag_ui: {enabled: true, message_field: query}\n",
        HANDLER,
    )
    seen = run_client(client_modules, base, [{"text": "hello from node"}], threadId="node-1")
    (run,) = seen["runs"]
    assert "failed" not in run
    assert run["text"] == "hello from node "
    assert run["result"] == {"answer": "HELLO FROM NODE", "thread": "node-1"}
    assert run["outcome"] == "success"
    assert run["events"][0] == "RUN_STARTED" and run["events"][-1] == "RUN_FINISHED"
    assert [(m["role"], m["content"]) for m in seen["messages"]] == [
        ("user", "hello from node"),
        ("assistant", "hello from node "),
    ]


def test_http_agent_runs_a_tool_calling_conversation_with_an_approval(
    client_modules: Path, react_url: str
) -> None:
    turns = [
        {"text": "what is the weather in Paris?"},
        {"text": "thanks"},  # the client sends the whole conversation back
        {"text": "email ana@example.com the agenda"},
        {"approve": True},  # AG-UI's resume, from the client's pending interrupt
    ]
    seen = run_client(client_modules, react_url, turns, headers=KEY, threadId="node-react")
    weather, thanks, email, approved = seen["runs"]
    assert all("failed" not in run for run in seen["runs"])
    assert weather["toolCalls"] == [{"name": "get_weather", "args": {"city": "Paris"}}]
    assert weather["toolResults"] == ["18°C and sunny"]
    assert weather["text"] == "Let me check the weather.Here is what I found: 18°C and sunny."
    assert {"TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"} <= set(
        weather["events"]
    )
    assert thanks["text"] == "You said: thanks"
    assert email["outcome"] == "interrupt" and email["pending"] == 1
    assert email["toolCalls"][0]["name"] == "send_email" and email["toolResults"] == []
    assert approved["toolResults"] == ["email to ana@example.com sent"]
    assert approved["outcome"] == "success" and approved["pending"] == 0
    # the conversation the client built: each tool call with its result after it
    roles = [
        (m["role"], [c["function"]["name"] for c in m.get("toolCalls", [])])
        for m in seen["messages"]
    ]
    assert roles == [
        ("user", []),
        ("assistant", ["get_weather"]),
        ("tool", []),
        ("assistant", []),
        ("user", []),
        ("assistant", []),
        ("user", []),
        ("assistant", ["send_email"]),
        ("tool", []),
        ("assistant", []),
    ]


def test_http_agent_front_end_tools_and_context_reach_the_graph(
    client_modules: Path, tmp_path: Path
) -> None:
    (tmp_path / "looking_graph.py").write_text(GRAPH)
    with serve_app(create_app(dockfile(tmp_path, "looking_graph:build"))) as base:
        turn = {"text": "what do you see?", "parameters": {"tools": TOOLS, "context": CONTEXT}}
        seen = run_client(client_modules, base, [turn])
    assert "failed" not in seen["runs"][0]
    # the client's state is the graph's, from its STATE_SNAPSHOT
    assert seen["state"]["seen"] == {
        "bound": ["show_chart"],
        "ag_ui_tools": ["show_chart"],
        "context": CONTEXT,
    }

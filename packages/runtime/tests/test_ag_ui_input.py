"""AG-UI's front-end `tools` and `context` on a real server: a graph whose state declares
`tools` and `ag-ui` gets them (LangGraph's AG-UI convention) and can bind the tools to a
model as they are; a graph that declares neither refuses them by name (LangGraph would
drop them); a handler gets them in its payload's `ag-ui`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langgraph")
ag_ui_core = pytest.importorskip("ag_ui.core")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
EVENT = TypeAdapter(ag_ui_core.Event)

TOOLS = [
    {
        "name": "show_chart",
        "description": "Draw a chart in the page",
        "parameters": {"type": "object", "properties": {"series": {"type": "array"}}},
    }
]
CONTEXT = [{"description": "the page the user is on", "value": "/reports/q3"}]

GRAPH = """
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

# "ag-ui" is no identifier: the functional TypedDict form declares it
State = TypedDict(
    "State",
    {"messages": Annotated[list, add_messages], "tools": list, "ag-ui": dict, "seen": dict},
)


def look(state: State) -> dict[str, Any]:
    ag_ui = state.get("ag-ui") or {}
    seen = {
        # the form LangChain's bind_tools takes: each converts as it is
        "bound": [convert_to_openai_tool(t)["function"]["name"] for t in state.get("tools") or []],
        "ag_ui_tools": [t["name"] for t in ag_ui.get("tools", [])],
        "context": ag_ui.get("context"),
    }
    return {"seen": seen, "messages": [AIMessage("looked")]}


def build():
    graph = StateGraph(State)
    graph.add_node("look", look)
    graph.add_edge(START, "look")
    graph.add_edge("look", END)
    return graph.compile()


def ask(state: State) -> dict[str, Any]:
    approved = interrupt("go on?")
    names = [t["name"] for t in state.get("tools") or []]
    return {"seen": {"approved": approved, "tools_after_resume": names}}


def build_asking():
    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=InMemorySaver())


@entrypoint()
def functional(inputs: dict) -> dict:
    # the functional API declares no state keys: the input comes whole
    return {"seen": {"tools": inputs.get("tools"), "ag_ui": inputs.get("ag-ui")}}


def build_functional():
    return functional
"""


def dockfile(folder: Path, entrypoint: str) -> Path:
    path = folder / "Dockfile.yaml"
    path.write_text(
        'version: "1.0"\n'
        f"agent: {{name: t, entrypoint: '{entrypoint}', framework: langgraph}}\n"
        "io_schema: {input: {type: object}}\n"
        "expose: {host: 127.0.0.1, ag_ui: {enabled: true}}\n"
    )
    return path


@pytest.fixture(scope="module")
def graph_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ag-ui-tools")
    (folder / "looking_graph.py").write_text(GRAPH)
    with serve_app(create_app(dockfile(folder, "looking_graph:build"))) as base:
        yield base


@pytest.fixture(scope="module")
def asking_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ag-ui-asking")
    (folder / "looking_graph.py").write_text(GRAPH)
    with serve_app(create_app(dockfile(folder, "looking_graph:build_asking"))) as base:
        yield base


@pytest.fixture(scope="module")
def functional_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ag-ui-functional")
    (folder / "looking_graph.py").write_text(GRAPH)
    with serve_app(create_app(dockfile(folder, "looking_graph:build_functional"))) as base:
        yield base


@pytest.fixture(scope="module")
def react_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ag-ui-react-tools")
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    with serve_app(create_app(dockfile(folder, "react:build"))) as base:
        yield base


def body(**extra: Any) -> dict[str, Any]:
    message = {"id": "u1", "role": "user", "content": "what do you see?"}
    return {"threadId": f"t-{uuid.uuid4().hex[:8]}", "runId": "r1", "messages": [message], **extra}


def events(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return [EVENT.validate_json(m.data) for m in parse_sse(response.content)]


def test_graph_that_declares_them_gets_tools_and_context(graph_url: str) -> None:
    sent = body(tools=TOOLS, context=CONTEXT)
    received = events(httpx.post(f"{graph_url}/ag-ui", json=sent, timeout=60))
    (snapshot,) = [e for e in received if e.type.value == "STATE_SNAPSHOT"]
    assert snapshot.snapshot["seen"] == {
        "bound": ["show_chart"],
        "ag_ui_tools": ["show_chart"],
        "context": CONTEXT,
    }
    # none sent: the graph's keys are set empty for this run, not left from a default
    received = events(httpx.post(f"{graph_url}/ag-ui", json=body(), timeout=60))
    (snapshot,) = [e for e in received if e.type.value == "STATE_SNAPSHOT"]
    assert snapshot.snapshot["seen"] == {"bound": [], "ag_ui_tools": [], "context": []}
    (messages,) = [e for e in received if e.type.value == "MESSAGES_SNAPSHOT"]
    assert [(m.role, m.content) for m in messages.messages] == [
        ("user", "what do you see?"),
        ("assistant", "looked"),
    ]
    # a message that is not all text (an image here) gets no snapshot: it would replace the
    # client's messages with a lesser copy
    source = {"type": "url", "value": "https://example.org/q3.png", "mimeType": "image/png"}
    image = {"type": "image", "source": source}
    parts = [{"type": "text", "text": "and this?"}, image]
    sent = {**body(), "messages": [{"id": "u2", "role": "user", "content": parts}]}
    received = events(httpx.post(f"{graph_url}/ag-ui", json=sent, timeout=60))
    kinds = [e.type.value for e in received]
    assert "STATE_SNAPSHOT" in kinds and "MESSAGES_SNAPSHOT" not in kinds


def test_resumed_graph_gets_the_tools_sent_with_the_resume(asking_url: str) -> None:
    first = body(tools=TOOLS)
    stopped = events(httpx.post(f"{asking_url}/ag-ui", json=first, timeout=60))[-1]
    (pending,) = stopped.outcome.interrupts
    other = [{**TOOLS[0], "name": "open_tab"}]
    entry = {"interruptId": pending.id, "status": "resolved", "payload": True}
    resume = {**body(tools=other), "threadId": first["threadId"], "resume": [entry]}
    received = events(httpx.post(f"{asking_url}/ag-ui", json=resume, timeout=60))
    (snapshot,) = [e for e in received if e.type.value == "STATE_SNAPSHOT"]
    assert snapshot.snapshot["seen"] == {"approved": True, "tools_after_resume": ["open_tab"]}


def test_functional_graph_gets_both_with_its_input(functional_url: str) -> None:
    sent = body(tools=TOOLS, context=CONTEXT)
    received = events(httpx.post(f"{functional_url}/ag-ui", json=sent, timeout=60))
    (snapshot,) = [e for e in received if e.type.value == "STATE_SNAPSHOT"]
    assert snapshot.snapshot["seen"] == {
        "tools": TOOLS,
        "ag_ui": {"tools": TOOLS, "context": CONTEXT},
    }


@pytest.mark.parametrize(("field", "value"), [("tools", TOOLS), ("context", CONTEXT)])
def test_graph_without_the_keys_refuses_them_by_name(
    react_url: str, field: str, value: list[dict[str, Any]]
) -> None:
    refused = httpx.post(f"{react_url}/ag-ui", json=body(**{field: value}), timeout=60)
    assert refused.status_code == 400
    error = refused.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["loc"] == ["body", field]
    assert "'ag-ui'" in error["error"]
    # with a resume too: they would be set as the graph resumes, and it has no key for them
    resume = body(**{field: value}, resume=[{"interruptId": "i", "status": "resolved"}])
    refused = httpx.post(f"{react_url}/ag-ui", json=resume, timeout=60)
    assert refused.status_code == 400 and refused.json()["details"][0]["loc"] == ["body", field]
    # empty lists (what every AG-UI client sends by default) are nothing to refuse
    empty = httpx.post(f"{react_url}/ag-ui", json=body(tools=[], context=[]), timeout=60)
    assert events(empty)[-1].type.value == "RUN_FINISHED"


HANDLER = """
def answer(payload):
    return {"query": payload["query"], "ag_ui": payload.get("ag-ui")}
"""


def test_handler_gets_them_in_its_payload(serve: Callable[..., str]) -> None:
    base = serve(
        "answer",
        "expose:\n  host: 127.0.0.1\n  ag_ui: {enabled: true, message_field: query}\n",
        HANDLER,
    )
    finished = events(httpx.post(f"{base}/ag-ui", json=body(tools=TOOLS, context=CONTEXT)))[-1]
    assert finished.result == {
        "query": "what do you see?",
        "ag_ui": {"tools": TOOLS, "context": CONTEXT},
    }
    # nothing sent, nothing added
    finished = events(httpx.post(f"{base}/ag-ui", json=body(tools=[], context=[])))[-1]
    assert finished.result == {"query": "what do you see?", "ag_ui": None}

"""LangGraph graphs stream natively: real langgraph and langchain-core, no mocks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import SseParser, parse_sse

from .conftest import agent_module

pytest.importorskip("langgraph")

GRAPH = """
import asyncio
from typing import TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from dockrion_events import get_current_context

ran = []


class State(TypedDict, total=False):
    query: str
    question: str
    draft: str
    answer: str


def plan(state: State) -> dict:
    ran.append("plan")
    writer = get_stream_writer()
    writer({"type": "progress", "step": "planning", "progress": 0.5})
    writer({"type": "checkpoint", "name": "outline", "data": {"points": 2}})
    writer({"type": "citation", "url": "https://example.com"})
    return {"draft": "notes on " + state["question"]}


async def write(state: State) -> dict:
    ran.append("write")
    get_current_context().sync_emit("from_node", seen=True)
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Quantum bits are neat")]))
    text = ""
    async for chunk in model.astream(state["draft"]):
        text += chunk.content
    return {"answer": text}


def build():
    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("write", write)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "write")
    graph.add_edge("write", END)
    return graph.compile()


async def slow_step(state: State) -> dict:
    ran.append("slow")
    await asyncio.sleep(30)
    return {"draft": "late"}


def never(state: State) -> dict:
    ran.append("never")
    return {"answer": "should not run"}


async def maybe_slow(state: State) -> dict:
    if state["query"] == "slow":
        ran.append("slow")
        await asyncio.sleep(30)
    return {"answer": "fast " + state["query"]}


def build_threaded():
    from langgraph.checkpoint.memory import InMemorySaver

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("work", maybe_slow)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "work")
    graph.add_edge("work", END)
    return graph.compile(checkpointer=InMemorySaver())


def build_nested():
    inner = StateGraph(State)
    inner.add_node("write", write)
    inner.add_edge(START, "write")
    inner.add_edge("write", END)
    outer = StateGraph(State)
    outer.add_node("plan", plan)
    outer.add_node("team", inner.compile())
    outer.add_edge(START, "plan")
    outer.add_edge("plan", "team")
    outer.add_edge("team", END)
    return outer.compile()


def build_slow():
    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("slow", slow_step)
    graph.add_node("never", never)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "slow")
    graph.add_edge("slow", "never")
    graph.add_edge("never", END)
    return graph.compile()
"""

Serve = Callable[..., str]


def serve_graph(serve: Serve, factory: str, extra: str = "") -> str:
    return serve(factory, extra, module=GRAPH, entrypoint=True, framework="langgraph")


def stream(url: str) -> list[dict[str, Any]]:
    raw = httpx.post(
        f"{url}/invoke/stream", json={"query": "q", "question": "qubits"}, timeout=60
    ).content
    return [json.loads(m.data) for m in parse_sse(raw)]


def test_tokens_steps_and_writer_events_stream_in_order(serve: Serve) -> None:
    url = serve_graph(serve, "build")
    events = stream(url)
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "complete"
    assert [e["sequence"] for e in events] == list(range(len(events)))
    tokens = [e["content"] for e in events if e["type"] == "token"]
    assert "".join(tokens) == "Quantum bits are neat"
    assert types.index("token") < types.index("complete")
    steps = [e for e in events if e["type"] == "step"]
    assert [s["node_name"] for s in steps] == ["plan", "write"]
    assert steps[0]["output_keys"] == ["draft"] and steps[0]["input_keys"] == ["query", "question"]
    assert steps[1]["output_keys"] == ["answer"]
    assert all(isinstance(s["duration_ms"], int) for s in steps)
    assert {"progress", "checkpoint", "custom:citation", "custom:from_node"} <= set(types)
    # the writer's events come before the node's step, tokens before the `write` step
    assert types.index("progress") < types.index("step")
    assert max(i for i, t in enumerate(types) if t == "token") < len(types) - 2
    assert events[-1]["output"] == {
        "query": "q",
        "question": "qubits",
        "draft": "notes on qubits",
        "answer": "Quantum bits are neat",
    }


def test_an_entrypoint_may_name_the_compiled_graph_itself(serve: Serve) -> None:
    # what langgraph.json users write: `module:graph`, not a factory
    module = GRAPH + "\ngraph = build()\n"
    url = serve("graph", module=module, entrypoint=True, framework="langgraph")
    events = stream(url)
    assert events[-1]["type"] == "complete"
    assert events[-1]["output"]["answer"] == "Quantum bits are neat"
    assert "".join(e["content"] for e in events if e["type"] == "token") == (
        "Quantum bits are neat"
    )


def test_only_the_modes_the_filter_allows(serve: Serve) -> None:
    url = serve_graph(serve, "build", "streaming:\n  events: {allowed: chat}\n")
    types = [e["type"] for e in stream(url)]
    assert set(types) == {"started", "token", "complete"}


def test_invoke_returns_the_final_state(serve: Serve) -> None:
    url = serve_graph(serve, "build")
    body = httpx.post(f"{url}/invoke", json={"query": "q", "question": "qubits"}).json()
    assert body["output"]["answer"] == "Quantum bits are neat"


def test_cancel_mid_graph_stops_further_nodes(serve: Serve, tmp_path: Path) -> None:
    url = serve_graph(serve, "build_slow")
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "q", "question": "q"}).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        parser = SseParser()
        for chunk in response.iter_bytes():
            if any(m.event == "step" for m in parser.feed(chunk)):
                break  # `plan` is done; `slow` is running
    assert httpx.delete(f"{url}/runs/{run_id}").status_code == 200
    raw = httpx.get(f"{url}/runs/{run_id}/events", timeout=60).content
    assert list(parse_sse(raw))[-1].event == "cancelled"
    assert "never" not in module.ran


def test_the_langgraph_chat_example_streams() -> None:
    from dockrion_runtime import create_app

    from .conftest import serve_app

    example = Path(__file__).resolve().parents[3] / "examples" / "langgraph-chat" / "Dockfile.yaml"
    with serve_app(create_app(example)) as url:
        raw = httpx.post(
            f"{url}/invoke/stream", json={"query": "what is a qubit?"}, timeout=60
        ).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    types = [e["type"] for e in events]
    assert types[:3] == ["started", "progress", "step"] and types[-1] == "complete"
    assert "custom:plan_used" in types
    answer = "".join(e["content"] for e in events if e["type"] == "token")
    assert (
        answer
        == events[-1]["output"]["answer"]
        == "You asked: what is a qubit?. Here is a short answer."
    )


def test_subgraphs_stream_their_tokens_and_steps(serve: Serve) -> None:
    url = serve_graph(serve, "build_nested")
    events = stream(url)
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(t["content"] for t in tokens) == "Quantum bits are neat"
    assert {t["node_name"] for t in tokens} == {"write"}
    steps = [e["node_name"] for e in events if e["type"] == "step"]
    assert steps == ["plan", "team/write", "team"]
    assert events[-1]["output"]["answer"] == "Quantum bits are neat"


def test_a_cancelled_run_leaves_its_thread_usable(serve: Serve) -> None:
    url = serve_graph(serve, "build_threaded")
    thread = {"thread_id": "chat-7"}
    run_id = httpx.post(
        f"{url}/runs", json={"query": "slow", "question": "q"}, params=thread
    ).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        parser = SseParser()
        for chunk in response.iter_bytes():
            if any(m.event == "step" for m in parser.feed(chunk)):
                break  # `plan` is done; `work` sleeps
    assert httpx.delete(f"{url}/runs/{run_id}").status_code == 200
    after = httpx.post(
        f"{url}/invoke", json={"query": "again", "question": "q"}, params=thread, timeout=60
    )
    assert after.status_code == 200, after.text
    assert after.json()["output"]["answer"] == "fast again"

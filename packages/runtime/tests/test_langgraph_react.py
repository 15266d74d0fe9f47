"""A real ReAct-style LangGraph agent (examples/langgraph-react): tool calls and results as
events of their own on every transport, threads that remember and belong to their caller
(on every instance when the backend is Redis), interrupts that resume. Real langgraph,
langchain-core and checkpointer; no mocks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from dockrion_events import RunStatus, parse_sse
from dockrion_events.client import Client, ServerError
from dockrion_events.models import CompleteEvent
from dockrion_runtime import create_app

from .conftest import serve_app
from .test_websocket import read_all, ws_url

pytest.importorskip("langgraph")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}
KEYS = {"TEAM_API_KEY_ALICE": ALICE["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}


def example_project(folder: Path, streaming: str = "") -> Path:
    """The example with API keys for two callers, WebSockets beside SSE, and `streaming`
    settings added to the example's own."""
    dockfile = folder / "Dockfile.yaml"
    text = (EXAMPLE / "Dockfile.yaml").read_text()
    text = text.replace("expose:\n", "expose:\n  streaming: [sse, websocket]\n", 1)
    text = text.replace("streaming:\n  events:", f"streaming:\n{streaming}  events:", 1)
    dockfile.write_text(text + "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n")
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    return dockfile


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockfile = example_project(tmp_path_factory.mktemp("react"))
    with serve_app(create_app(dockfile, environ=KEYS)) as base:
        yield base


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def stream(url: str, body: Any, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    raw = httpx.post(
        f"{url}/invoke/stream", json=body, params=params, headers=ALICE, timeout=60
    ).content
    return [json.loads(m.data) for m in parse_sse(raw)]


def wait_for(url: str, run_id: str, headers: dict[str, str] = ALICE) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run = httpx.get(f"{url}/runs/{run_id}", headers=headers).json()
        if run["status"] not in ("ACCEPTED", "RUNNING"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_tool_calls_and_results_are_events_and_tokens_are_model_text(url: str) -> None:
    events = stream(url, ask("what is the weather in Tokyo?"))
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "complete"
    (call,) = [e for e in events if e["type"] == "tool_call"]
    (result,) = [e for e in events if e["type"] == "tool_result"]
    assert (call["name"], call["arguments"], call["node_name"]) == (
        "get_weather",
        {"city": "Tokyo"},
        "agent",
    )
    assert (result["call_id"], result["name"], result["content"]) == (
        call["call_id"],
        "get_weather",
        "22°C, clear",
    )
    assert types.index("tool_call") < types.index("tool_result")
    tokens = [e for e in events if e["type"] == "token"]
    # model text only: the tool's answer ("22°C, clear") is never a token
    assert "".join(t["content"] for t in tokens) == (
        "Let me check the weather.Here is what I found: 22°C, clear."
    )
    assert {t["node_name"] for t in tokens} == {"agent"}
    output = events[-1]["output"]
    assert [m["type"] for m in output["messages"]] == ["human", "ai", "tool", "ai"]
    assert output["messages"][1]["tool_calls"][0]["name"] == "get_weather"
    assert events[-1]["metadata"]["usage"]["total_tokens"] > 0


def test_the_last_token_of_each_model_call_carries_its_finish_reason(url: str) -> None:
    events = stream(url, ask("what is the weather in Paris?"))
    tokens = [e for e in events if e["type"] == "token"]
    reasons = [t["finish_reason"] for t in tokens if t["finish_reason"] is not None]
    assert reasons == ["tool_calls", "stop"]
    # each on the last token of its model call: before the tool call, and at the very end
    positions = [i for i, e in enumerate(events) if e["type"] == "token" and e["finish_reason"]]
    types = [e["type"] for e in events]
    assert types.index("tool_call") > positions[0]
    assert not [e for e in events[positions[1] + 1 :] if e["type"] == "token"]
    assert tokens[-1]["finish_reason"] == "stop"


def test_standard_messages_input_works_on_invoke(url: str) -> None:
    answer = httpx.post(f"{url}/invoke", json=ask("hello"), headers=ALICE)
    assert answer.status_code == 200, answer.text
    messages = answer.json()["output"]["messages"]
    assert messages[-1] == {**messages[-1], "type": "ai", "content": "You said: hello"}


def test_a_thread_remembers_and_belongs_to_its_caller(url: str) -> None:
    thread = {"thread_id": "trip-1"}
    first = httpx.post(f"{url}/invoke", json=ask("hello"), params=thread, headers=ALICE)
    assert first.status_code == 200, first.text
    second = stream(url, ask("weather in Paris?"), params=thread)
    messages = second[-1]["output"]["messages"]
    assert [m["content"] for m in messages if m["type"] == "human"] == [
        "hello",
        "weather in Paris?",
    ]
    for path in ("/invoke", "/invoke/stream", "/runs"):
        refused = httpx.post(f"{url}{path}", json=ask("hi"), params=thread, headers=BOB)
        assert refused.status_code == 404, path
        assert refused.json()["code"] == "NOT_FOUND"


def test_interrupt_then_resume_to_completion(url: str) -> None:
    created = httpx.post(
        f"{url}/runs",
        json=ask("email bob@example.com the plan"),
        params={"thread_id": "mail-1"},
        headers=ALICE,
    )
    assert created.status_code == 202, created.text
    run = wait_for(url, created.json()["run_id"])
    assert run["status"] == "COMPLETED"
    (interrupt,) = run["output"]["__interrupt__"]
    assert interrupt["value"]["to"] == "bob@example.com" and interrupt["id"]
    raw = httpx.get(f"{url}/runs/{run['run_id']}/events", headers=ALICE, timeout=60).content
    last = json.loads(list(parse_sse(raw))[-1].data)
    assert last["type"] == "complete" and last["metadata"]["interrupted"] is True
    # another caller cannot resume it
    assert (
        httpx.post(
            f"{url}/runs/{run['run_id']}/resume", json={"approved": True}, headers=BOB
        ).status_code
        == 404
    )
    resumed = httpx.post(
        f"{url}/runs/{run['run_id']}/resume", json={"approved": True}, headers=ALICE
    )
    assert resumed.status_code == 202, resumed.text
    final = wait_for(url, resumed.json()["run_id"])
    assert final["status"] == "COMPLETED"
    assert "__interrupt__" not in final["output"]
    assert final["output"]["messages"][-1]["content"] == (
        "Here is what I found: email to bob@example.com sent."
    )
    # its interrupt is answered: a second resume is refused, and the thread is unchanged
    again = httpx.post(
        f"{url}/runs/{run['run_id']}/resume", json={"approved": False}, headers=ALICE
    )
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICT"), again.text


def test_two_resumes_sent_at_once_start_one_run(url: str) -> None:
    created = httpx.post(
        f"{url}/runs",
        json=ask("email cy@example.com the plan"),
        params={"thread_id": "mail-race"},
        headers=ALICE,
    )
    run = wait_for(url, created.json()["run_id"])
    assert run["output"]["__interrupt__"]

    async def resume_twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, headers=ALICE, timeout=60) as client:
            path = f"/runs/{run['run_id']}/resume"
            return list(
                await asyncio.gather(*(client.post(path, json={"approved": True}) for _ in "ab"))
            )

    answers = asyncio.run(resume_twice())
    assert sorted(answer.status_code for answer in answers) == [202, 409], [
        answer.text for answer in answers
    ]
    (started,) = [answer.json() for answer in answers if answer.status_code == 202]
    final = wait_for(url, started["run_id"])
    assert final["output"]["messages"][-1]["content"] == (
        "Here is what I found: email to cy@example.com sent."
    )


def test_the_python_client_resumes_an_interrupted_run(url: str) -> None:
    with Client(url, api_key=ALICE["X-API-Key"]) as client:
        run = client.create_run(ask("email ana@example.com the plan"), thread_id="mail-client")
        *_, last = client.events(run.run_id)
        assert isinstance(last, CompleteEvent) and last.metadata["interrupted"] is True
        assert client.get_run(run.run_id).output["__interrupt__"][0]["value"]["to"] == (
            "ana@example.com"
        )
        resumed = client.resume(run.run_id, {"approved": True})
        assert resumed.run_id != run.run_id
        assert resumed.metadata.get("resumed_from") == run.run_id
        *_, final = client.events(resumed.run_id)
        assert isinstance(final, CompleteEvent)
        assert final.output["messages"][-1]["content"] == (
            "Here is what I found: email to ana@example.com sent."
        )
        assert client.get_run(resumed.run_id).status is RunStatus.COMPLETED
    with Client(url, api_key=BOB["X-API-Key"]) as other, pytest.raises(ServerError) as refused:
        other.resume(run.run_id, {"approved": True})
    assert (refused.value.status, refused.value.code) == (404, "NOT_FOUND")


def test_a_graph_without_a_checkpointer_keeps_threads(serve: Callable[..., str]) -> None:
    module = (
        "from langgraph.graph import END, START, MessagesState, StateGraph\n"
        "from langchain_core.messages import AIMessage\n"
        "def build():\n"
        "    g = StateGraph(MessagesState)\n"
        "    g.add_node('n', lambda s: {'messages': [AIMessage(str(len(s['messages'])))]})\n"
        "    g.add_edge(START, 'n'); g.add_edge('n', END)\n"
        "    return g.compile()\n"
    )
    base = serve("build", module=module, entrypoint=True, framework="langgraph")
    for seen in ("1", "3"):  # the second turn sees the first turn's two messages
        answer = httpx.post(
            f"{base}/invoke",
            json={"query": "q", "messages": [{"role": "user", "content": "hi"}]},
            params={"thread_id": "t"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["messages"][-1]["content"] == seen


def test_the_graph_over_websockets(url: str) -> None:
    with connect(ws_url(url, "/invoke/ws"), additional_headers=ALICE) as socket:
        socket.send(json.dumps(ask("what is the weather in London?")))
        events, code, _ = read_all(socket)
    assert code == 1000
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "complete"
    assert types.index("tool_call") < types.index("tool_result")
    tokens = "".join(e["content"] for e in events if e["type"] == "token")
    assert tokens == "Let me check the weather.Here is what I found: 12°C and raining."
    # a background run stopped at its interrupt, followed over WS /runs/{id}/ws
    created = httpx.post(
        f"{url}/runs", json=ask("email ana@example.com the plan"), headers=ALICE
    ).json()
    with connect(ws_url(url, f"/runs/{created['run_id']}/ws"), additional_headers=ALICE) as socket:
        events, code, _ = read_all(socket)
    assert [e["sequence"] for e in events] == list(range(len(events)))
    last = events[-1]
    assert last["type"] == "complete" and last["metadata"]["interrupted"] is True
    assert last["output"]["__interrupt__"][0]["value"]["to"] == "ana@example.com"


def test_a_thread_belongs_to_its_caller_on_every_redis_instance(
    tmp_path: Path, redis_server: Any
) -> None:
    redis = f"  backend: redis\n  redis: {{url: '{redis_server.url}', key_prefix: threads-{tmp_path.name}}}\n"
    dockfile = example_project(tmp_path, redis)
    thread = {"thread_id": "shared-trip"}
    with (
        serve_app(create_app(dockfile, environ=KEYS)) as a,
        serve_app(create_app(dockfile, environ=KEYS)) as b,
    ):
        first = httpx.post(f"{a}/invoke", json=ask("hello"), params=thread, headers=ALICE)
        assert first.status_code == 200, first.text
        for path in ("/invoke", "/invoke/stream", "/runs"):
            refused = httpx.post(f"{b}{path}", json=ask("hi"), params=thread, headers=BOB)
            assert (refused.status_code, refused.json()["code"]) == (404, "NOT_FOUND"), path
        again = httpx.post(f"{b}/invoke", json=ask("hi"), params=thread, headers=ALICE)
        assert again.status_code == 200, again.text


NESTED = """
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from react import TOOLS, ScriptedChatModel

def build():
    model = ScriptedChatModel()

    async def agent(state):
        return {"messages": [await model.ainvoke(state["messages"])]}

    inner = StateGraph(MessagesState)
    inner.add_node("agent", agent)
    inner.add_node("tools", ToolNode(TOOLS))
    inner.add_edge(START, "agent")
    inner.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    inner.add_edge("tools", "agent")
    outer = StateGraph(MessagesState)
    outer.add_node("assistant", inner.compile())
    outer.add_edge(START, "assistant")
    outer.add_edge("assistant", END)
    return outer.compile()
"""


def test_tool_events_of_a_subgraph_arrive_once(serve: Callable[..., str], tmp_path: Path) -> None:
    (tmp_path / "react.py").write_text((EXAMPLE / "react.py").read_text())
    base = serve("build", module=NESTED, entrypoint=True, framework="langgraph")
    body = {"query": "q", **ask("weather in Tokyo?")}
    raw = httpx.post(f"{base}/invoke/stream", json=body, timeout=60).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    # the parent's update for `assistant` repeats the subgraph's messages: not its events
    (call,) = [e for e in events if e["type"] == "tool_call"]
    (result,) = [e for e in events if e["type"] == "tool_result"]
    assert (call["node_name"], result["node_name"]) == ("assistant/agent", "assistant/tools")
    assert result["call_id"] == call["call_id"]
    steps = [e["node_name"] for e in events if e["type"] == "step"]
    assert steps == ["assistant/agent", "assistant/tools", "assistant/agent", "assistant"]
    complete = events[-1]
    assert complete["type"] == "complete"
    # usage is counted once per model answer, not again for the parent's copy
    answers = [m for m in complete["output"]["messages"] if m["type"] == "ai"]
    total = sum(m["usage_metadata"]["total_tokens"] for m in answers)
    assert complete["metadata"]["usage"]["total_tokens"] == total > 0


HAND_WRITTEN = """
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

def build():
    model = GenericFakeChatModel(messages=iter([AIMessage(content="model words")]))

    def greet(state):
        return {"messages": [AIMessage(content="hand written"), HumanMessage(content="aside")]}

    async def answer(state):
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("greet", greet)
    graph.add_node("answer", answer)
    graph.add_edge(START, "greet")
    graph.add_edge("greet", "answer")
    graph.add_edge("answer", END)
    return graph.compile()
"""


def test_messages_a_node_writes_are_not_tokens(serve: Callable[..., str]) -> None:
    base = serve("build", module=HAND_WRITTEN, entrypoint=True, framework="langgraph")
    raw = httpx.post(f"{base}/invoke/stream", json={"query": "q", **ask("hi")}, timeout=60)
    events = [json.loads(m.data) for m in parse_sse(raw.content)]
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(t["content"] for t in tokens) == "model words"
    assert {t["node_name"] for t in tokens} == {"answer"}
    contents = [m["content"] for m in events[-1]["output"]["messages"]]
    assert contents == ["hi", "hand written", "aside", "model words"]

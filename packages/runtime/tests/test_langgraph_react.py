"""A real ReAct-style LangGraph agent (examples/langgraph-react): tool calls and results as
events of their own, threads that remember, interrupts that resume, cancellation that
leaves the thread usable. Real langgraph, langchain-core and checkpointer; no mocks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import RunStatus, parse_sse
from dockrion_events.client import Client, ServerError
from dockrion_events.models import CompleteEvent
from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langgraph")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("react")
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        (EXAMPLE / "Dockfile.yaml").read_text()
        + "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
    )
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    environ = {"TEAM_API_KEY_ALICE": ALICE["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
    with serve_app(create_app(dockfile, environ=environ)) as base:
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


def test_a_thread_id_needs_a_checkpointer(serve: Callable[..., str]) -> None:
    module = (
        "from langgraph.graph import END, START, MessagesState, StateGraph\n"
        "def build():\n"
        "    g = StateGraph(MessagesState)\n"
        "    g.add_node('n', lambda s: {'messages': []})\n"
        "    g.add_edge(START, 'n'); g.add_edge('n', END)\n"
        "    return g.compile()\n"
    )
    base = serve("build", module=module, entrypoint=True, framework="langgraph")
    refused = httpx.post(f"{base}/invoke", json={"query": "q"}, params={"thread_id": "t"})
    assert refused.status_code == 400
    assert "checkpointer" in refused.json()["error"]

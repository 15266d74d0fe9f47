"""LangGraph's own Python client (`langgraph-sdk`) against the LangGraph Server API that
`expose.langgraph_api` serves under `/lg`: the LangGraph react example (tool calls, an
approval with `interrupt()`) and a handler agent, on live uvicorn servers, with API keys.
Runs that must stay busy hold a gate the test opens, so nothing depends on timing."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langgraph")
langgraph_sdk = pytest.importorskip("langgraph_sdk")
from langgraph_sdk.errors import ConflictError, NotFoundError  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
KEYS = {"TEAM_API_KEY_ALICE": "key-alice", "TEAM_API_KEY_BOB": "key-bob"}
AUTH = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
MODES = ["messages-tuple", "values", "updates", "custom"]

HELPER = """
import threading
from dockrion_events import StreamContext

seen = []
gate = threading.Event()


def talk(payload, context: StreamContext):
    words = str(payload.get("say", "hello world")).split()
    if payload.get("hold"):
        seen.append(("enter", payload["say"]))
        gate.wait(60)
        seen.append(("exit", payload["say"]))
    for word in words:
        context.sync_emit_token(word + " ")
    context.sync_emit("note", count=len(words))
    return {"answer": " ".join(words), "thread": context.thread_id}
"""


@pytest.fixture(scope="module")
def react_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("react-langgraph-api")
    text = (EXAMPLE / "Dockfile.yaml").read_text()
    text = text.replace("expose:\n", "expose:\n  langgraph_api:\n    enabled: true\n", 1)
    (folder / "Dockfile.yaml").write_text(text + AUTH)
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    with serve_app(create_app(folder / "Dockfile.yaml", environ=KEYS)) as base:
        yield base


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    folder = tmp_path_factory.mktemp("helper-langgraph-api")
    name = f"lg_helper_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(HELPER)
    (folder / "Dockfile.yaml").write_text(
        'version: "1.0"\n'
        f'agent: {{name: helper, handler: "{name}:talk"}}\n'
        "io_schema:\n  input: {type: object}\n"
        "expose:\n  host: 127.0.0.1\n  langgraph_api: {enabled: true}\n"
        "streaming:\n  events: {allowed: all}\n" + AUTH
    )
    with serve_app(create_app(folder / "Dockfile.yaml", environ=KEYS)) as base:
        import sys

        yield base, sys.modules[name]


def client(base: str, key: str = "key-alice") -> Any:
    return langgraph_sdk.get_sync_client(url=f"{base}/lg", api_key=key)


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def parts(stream: Any) -> list[Any]:
    return list(stream)


def test_stream_every_mode_then_the_thread_state(react_url: str) -> None:
    lg = client(react_url)
    thread = lg.threads.create(metadata={"topic": "weather"})
    got = parts(
        lg.runs.stream(
            thread["thread_id"],
            "langgraph-react",
            input=ask("what is the weather in Paris?"),
            stream_mode=MODES,
        )
    )
    events = [part.event for part in got]
    assert events[0] == "metadata"
    run_id = got[0].data["run_id"]
    assert got[0].data == {"run_id": run_id, "attempt": 1}
    assert set(events) >= {"metadata", "messages", "values", "updates"}
    # messages-tuple: [chunk, metadata]; the chunks of one message share an id
    chunks = [part.data for part in got if part.event == "messages"]
    by_id: dict[str, str] = {}
    for chunk, metadata in chunks:
        assert chunk["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "agent"
        by_id[chunk["id"]] = by_id.get(chunk["id"], "") + chunk["content"]
    assert list(by_id.values()) == [
        "Let me check the weather.",
        "Here is what I found: 18°C and sunny.",
    ]
    values = [part.data for part in got if part.event == "values"]
    final = values[-1]
    # the state after each step: input, agent, tools, agent
    assert [len(v["messages"]) for v in values] == [1, 2, 3, 4]
    assert [m["type"] for m in final["messages"]] == ["human", "ai", "tool", "ai"]
    assert final["messages"][-1]["content"] == "Here is what I found: 18°C and sunny."
    # the streamed chunks carry the ids of the messages the state keeps
    assert list(by_id) == [final["messages"][1]["id"], final["messages"][3]["id"]]
    updates = [part.data for part in got if part.event == "updates"]
    assert [list(update) for update in updates] == [["agent"], ["tools"], ["agent"]]
    assert updates[0]["agent"]["messages"][0]["tool_calls"][0]["name"] == "get_weather"
    assert updates[1]["tools"]["messages"][0]["content"] == "18°C and sunny"
    # every frame carries an id the clients resume from
    assert all(part.id for part in got)
    state = lg.threads.get_state(thread["thread_id"])
    assert state["values"] == final
    assert state["next"] == [] and state["interrupts"] == []
    assert state["checkpoint"]["thread_id"] == thread["thread_id"]
    run = lg.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "success" and run["thread_id"] == thread["thread_id"]
    found = lg.threads.search(metadata={"topic": "weather"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert found[0]["values"]["messages"][-1]["content"].startswith("Here is what I found")
    assert found[0]["status"] == "idle"


def test_an_interrupt_is_resumed_with_a_command(react_url: str) -> None:
    lg = client(react_url)
    thread = lg.threads.create()
    tid = thread["thread_id"]
    stopped = lg.runs.wait(tid, "langgraph-react", input=ask("email ana@example.com the agenda"))
    [waiting] = stopped["__interrupt__"]
    assert waiting["value"]["action"] == "send_email"
    assert lg.threads.get(tid)["status"] == "interrupted"
    state = lg.threads.get_state(tid)
    assert state["next"] == ["tools"]
    assert state["tasks"][0]["interrupts"][0]["id"] == waiting["id"]
    resumed = lg.runs.wait(tid, "langgraph-react", command={"resume": {"approved": True}})
    assert "__interrupt__" not in resumed
    assert "email to ana@example.com sent" in [m["content"] for m in resumed["messages"]]
    assert lg.threads.get(tid)["status"] == "idle"
    with pytest.raises(httpx.HTTPStatusError) as refused:  # nothing waits any more
        lg.runs.wait(tid, "langgraph-react", command={"resume": {"approved": True}})
    assert refused.value.response.status_code == 409
    history = lg.threads.get_history(tid, limit=3)
    assert history[0]["values"] == lg.threads.get_state(tid)["values"]  # newest first


def test_a_background_run_joined_cut_and_rejoined_gets_every_event_once(
    helper: tuple[str, Any],
) -> None:
    base, _ = helper
    lg = client(base)
    tid = lg.threads.create()["thread_id"]
    words = " ".join(f"w{i}" for i in range(40))
    run = lg.runs.create(
        tid, "helper", input={"say": words}, stream_mode=["messages-tuple", "values", "custom"]
    )
    assert run["status"] in ("pending", "running", "success")
    first: list[Any] = []
    for part in lg.runs.join_stream(tid, run["run_id"]):
        first.append(part)
        if len(first) == 10:
            break  # the client goes away mid-answer
    rest = parts(lg.runs.join_stream(tid, run["run_id"], last_event_id=first[-1].id))
    whole = parts(lg.runs.join_stream(tid, run["run_id"], last_event_id="-1"))
    assert [(p.id, p.event, p.data) for p in first + rest] == [
        (p.id, p.event, p.data) for p in whole
    ]
    assert len({p.id for p in whole}) == len(whole)
    text = "".join(p.data[0]["content"] for p in whole if p.event == "messages")
    assert text.split() == words.split()
    assert [p.data for p in whole if p.event == "custom"] == [{"type": "note", "count": 40}]
    assert whole[-1].event == "values" and whole[-1].data["answer"] == words
    assert lg.runs.get(tid, run["run_id"])["status"] == "success"


def test_runs_wait_and_a_stateless_run(helper: tuple[str, Any]) -> None:
    base, _ = helper
    lg = client(base)
    tid = lg.threads.create()["thread_id"]
    assert lg.runs.wait(tid, "helper", input={"say": "one two"}) == {
        "answer": "one two",
        "thread": tid,
    }
    streamed = parts(lg.runs.stream(None, "helper", input={"say": "hi"}, stream_mode="values"))
    assert [p.event for p in streamed] == ["metadata", "values"]
    assert streamed[-1].data["answer"] == "hi"
    runs = lg.runs.list(tid)
    assert [r["status"] for r in runs] == ["success"]


def _hold(lg: Any, tid: str, say: str, strategy: str) -> Any:
    return lg.runs.create(
        tid, "helper", input={"say": say, "hold": True}, multitask_strategy=strategy
    )


def _until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 30
    while not (value := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return value


def _ended(lg: Any, tid: str, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = lg.runs.get(tid, run_id)
        return run if run["status"] not in ("pending", "running") else None

    result: dict[str, Any] = _until(done, f"run {run_id} ends")
    return result


@pytest.mark.parametrize("strategy", ["reject", "enqueue", "interrupt", "rollback"])
def test_each_multitask_strategy_on_a_busy_thread(helper: tuple[str, Any], strategy: str) -> None:
    base, module = helper
    lg = client(base)
    tid = lg.threads.create()["thread_id"]
    module.seen.clear()
    module.gate.clear()
    first = _hold(lg, tid, "first", "enqueue")
    _until(lambda: ("enter", "first") in module.seen, "the first run holds the thread")
    if strategy == "reject":
        with pytest.raises(ConflictError):
            _hold(lg, tid, "second", strategy)
        module.gate.set()
        assert _ended(lg, tid, first["run_id"])["status"] == "success"
        return
    second = _hold(lg, tid, "second", strategy)
    module.gate.set()
    ended = _ended(lg, tid, second["run_id"])
    assert ended["status"] == "success"
    before = _ended(lg, tid, first["run_id"])["status"]
    assert before == ("success" if strategy == "enqueue" else "interrupted")
    kinds = [kind for kind, _ in module.seen]
    assert kinds == ["enter", "exit"] * (len(kinds) // 2)  # one run at a time


def test_keys_refusals_and_owners(helper: tuple[str, Any], react_url: str) -> None:
    base, _ = helper
    alice, bob = client(base), client(base, "key-bob")
    tid = alice.threads.create()["thread_id"]
    with pytest.raises(NotFoundError):
        bob.threads.get(tid)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        bob.runs.wait(tid, "helper", input={"say": "mine"})
    assert refused.value.response.status_code == 404
    assert bob.threads.search() == [] or tid not in [t["thread_id"] for t in bob.threads.search()]
    anonymous = httpx.post(f"{base}/lg/threads", json={}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]["code"] == "AUTH_ERROR"
    wrong = httpx.post(f"{base}/lg/threads", json={}, headers={"x-api-key": "nope"}, timeout=30)
    assert wrong.status_code == 401
    # a Bearer token through headers works like x-api-key
    bearer = httpx.get(
        f"{base}/lg/threads/{tid}", headers={"Authorization": "Bearer key-alice"}, timeout=30
    )
    assert bearer.status_code == 200, bearer.text
    unknown = httpx.post(
        f"{base}/lg/threads/{tid}/runs/wait",
        json={"assistant_id": "nobody", "input": {}},
        headers={"x-api-key": "key-alice"},
        timeout=30,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    bad = httpx.post(
        f"{base}/lg/threads/{tid}/runs/wait",
        json={"assistant_id": "helper", "stream_mode": "loud"},
        headers={"x-api-key": "key-alice"},
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    assert alice.assistants.search()[0]["graph_id"] == "helper"
    assert httpx.get(f"{base}/lg/info", timeout=30).status_code == 200


def test_created_runs_are_named_in_content_location(helper: tuple[str, Any]) -> None:
    base, _ = helper
    headers = {"x-api-key": "key-alice"}
    tid = httpx.post(f"{base}/lg/threads", json={}, headers=headers, timeout=30).json()["thread_id"]
    created = httpx.post(
        f"{base}/lg/threads/{tid}/runs",
        json={"assistant_id": "helper", "input": {"say": "x"}},
        headers=headers,
        timeout=30,
    )
    run_id = created.json()["run_id"]
    assert created.headers["content-location"] == f"/lg/threads/{tid}/runs/{run_id}"
    with httpx.stream(
        "POST",
        f"{base}/lg/threads/{tid}/runs/stream",
        json={"assistant_id": "helper", "input": {"say": "y"}, "stream_resumable": True},
        headers=headers,
        timeout=30,
    ) as response:
        location = response.headers["location"]
        assert response.headers["content-location"].startswith(f"/lg/threads/{tid}/runs/")
        assert location == response.headers["content-location"].removeprefix("/lg") + "/stream"
        body = response.read().decode()
    assert "event: metadata" in body and json.loads(body.split("data: ")[1].split("\n")[0])


def test_concurrent_resumes_make_one_run(react_url: str) -> None:
    lg = client(react_url)
    tid = lg.threads.create()["thread_id"]
    lg.runs.wait(tid, "langgraph-react", input=ask("email bo@example.com hi"))

    def resume() -> str:
        try:
            lg.runs.wait(tid, "langgraph-react", command={"resume": {"approved": False}})
            return "ran"
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 409
            return "refused"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: resume(), range(2)))
    assert outcomes == ["ran", "refused"]


def test_the_api_description_lists_the_prefixed_routes(helper: tuple[str, Any]) -> None:
    base, _ = helper
    document = httpx.get(f"{base}/openapi.json", timeout=30).json()
    operation = document["paths"]["/lg/threads/{thread_id}/runs/stream"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "assistant_id"
    ]
    assert "security" in operation
    assert "/lg/ok" in document["paths"]


def test_messages_mode_sends_metadata_partial_and_complete_messages(react_url: str) -> None:
    lg = client(react_url)
    tid = lg.threads.create()["thread_id"]
    got = parts(
        lg.runs.stream(tid, "langgraph-react", input=ask("hello there"), stream_mode="messages")
    )
    events = [part.event for part in got]
    assert events[0] == "metadata" and events[1] == "messages/metadata"
    assert set(events[2:-1]) == {"messages/partial"} and events[-1] == "messages/complete"
    [message_id] = got[1].data
    assert got[1].data[message_id]["metadata"]["langgraph_node"] == "agent"
    partial = [part.data[0]["content"] for part in got if part.event == "messages/partial"]
    assert partial[-1] == "You said: hello there" and partial[0] == "You "
    assert got[-1].data[0]["id"] == message_id
    assert got[-1].data[0]["content"] == "You said: hello there"


PAGE = Path(__file__).resolve().parents[3] / "docs" / "langgraph-clients.md"
DOC_BLOCK = re.compile(r"^<!-- test-langgraph -->\n```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_the_page_has_tested_python_examples() -> None:
    assert len(DOC_BLOCK.findall(PAGE.read_text())) >= 3


@pytest.mark.parametrize("index", range(3))
def test_the_page_python_examples_run(index: int, react_url: str) -> None:
    code = DOC_BLOCK.findall(PAGE.read_text())[index].replace("http://localhost:8080", react_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"langgraph-clients.md[{index}]", "exec"), {"__name__": "__docs__"})
    printed = out.getvalue()
    expected = ["18°C and sunny", "Send it?", "22°C, clear"][index]
    assert expected in printed, printed

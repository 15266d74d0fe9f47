"""Threads for every agent and every way a run comes in: a thread's ownership lasts as
long as its retention; AG-UI runs use the runtime's checkpointer. Real uvicorn, real
redis-server, the protocol package's own models; no mocks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app, write_project
from .test_thread_turns import finished, until
from .test_threads import record

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ANA, BOB = {"X-API-Key": "key-ana"}, {"X-API-Key": "key-bob"}
KEYS = {"TEAM_API_KEY_ANA": ANA["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
AUTH = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"

HANDLER = """
def reply(payload, context):
    return {"answer": payload["query"], "thread": context.thread_id}
"""
REDACTING = """
expose: {host: 127.0.0.1, streaming: [sse, websocket]}
policies:
  safety:
    redact_patterns: ["(?<=password=)[a-z0-9]+"]
"""


def invoke(url: str, query: str, thread: str, who: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/invoke", json={"query": query}, params={"thread_id": thread}, headers=who
    )


def test_ownership_lasts_as_long_as_the_threads_ttl(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "reply", AUTH + "threads: {ttl_seconds: 1}\n", HANDLER)
    with serve_app(create_app(dockfile, environ=KEYS)) as url:
        assert invoke(url, "mine", "short", ANA).status_code == 200
        assert invoke(url, "mine?", "short", BOB).status_code == 404
        # past its ttl, untouched, the thread is gone: the id is free for anyone
        until(lambda: invoke(url, "now mine", "short", BOB).status_code == 200, "it expires")


@pytest.mark.parametrize("ttl", [None, 600])
def test_ownership_in_redis_follows_the_ttl(tmp_path: Path, redis_server: Any, ttl: Any) -> None:
    prefix = f"o{uuid.uuid4().hex[:8]}"
    extra = (
        AUTH
        + ("" if ttl is None else f"threads: {{ttl_seconds: {ttl}}}\n")
        + f"streaming:\n  backend: redis\n  redis: {{url: '{redis_server.url}', "
        f"key_prefix: {prefix}}}\n"
    )
    dockfile = write_project(tmp_path, "reply", extra, HANDLER)
    client = redis.Redis.from_url(redis_server.url)
    with serve_app(create_app(dockfile, environ=KEYS)) as url:
        assert invoke(url, "hi", "kept", ANA).status_code == 200
        # its ownership and its record last as long as its retention, renewed by each run
        for key in ("", ":runs", ":record"):
            left = client.pttl(f"{prefix}:thread:{{kept}}{key}")
            if ttl is None:
                assert left == -1, key  # no expiry: kept until the thread is deleted
            else:
                assert 0 < left <= ttl * 1000, key
        assert invoke(url, "hi", "kept", BOB).status_code == 404


@pytest.fixture(scope="module")
def ag_ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The react example, its graph compiled without a checkpointer."""
    pytest.importorskip("ag_ui.core")
    folder = tmp_path_factory.mktemp("react-no-checkpointer")
    (folder / "Dockfile.yaml").write_text((EXAMPLE / "Dockfile.yaml").read_text())
    source = (EXAMPLE / "react.py").read_text()
    assert "graph.compile(checkpointer=InMemorySaver())" in source
    (folder / "react.py").write_text(source.replace("checkpointer=InMemorySaver()", ""))
    with serve_app(create_app(folder / "Dockfile.yaml")) as base:
        yield base


def ag_ui_run(url: str, thread: str, *messages: dict[str, Any]) -> list[Any]:
    from ag_ui.core import Event
    from pydantic import TypeAdapter

    from dockrion_events import parse_sse

    body = {"threadId": thread, "runId": f"r-{uuid.uuid4().hex[:8]}", "messages": list(messages)}
    response = httpx.post(f"{url}/ag-ui", json=body, timeout=60)
    assert response.status_code == 200, response.text
    adapter: TypeAdapter[Any] = TypeAdapter(Event)
    return [adapter.validate_json(m.data) for m in parse_sse(response.content)]


def test_ag_ui_keeps_the_conversation_on_the_runtimes_checkpointer(ag_ui_url: str) -> None:
    thread = f"chat-{uuid.uuid4().hex[:6]}"
    first_user = {"id": "u-1", "role": "user", "content": "hello there"}
    first = ag_ui_run(ag_ui_url, thread, first_user)
    answer = "".join(e.delta for e in first if e.type.value == "TEXT_MESSAGE_CONTENT")
    assert answer == "You said: hello there"
    # the client sends the whole conversation back; the graph gets only the new turn
    second = ag_ui_run(
        ag_ui_url,
        thread,
        first_user,
        {"id": "a-1", "role": "assistant", "content": answer},
        {"id": "u-2", "role": "user", "content": "thanks"},
    )
    run_id = second[0].metadata["dockrion"]["run_id"]
    run = httpx.get(f"{ag_ui_url}/runs/{run_id}").json()
    contents = [m["content"] for m in run["output"]["messages"]]
    assert contents == ["hello there", "You said: hello there", "thanks", "You said: thanks"]
    # the thread is the runtime's: its checkpoints hold both turns
    kept = httpx.get(f"{ag_ui_url}/threads/{thread}")
    assert kept.status_code == 200, kept.text
    assert [m["content"] for m in kept.json()["values"]["messages"]] == contents
    # a client that sends only the new message is answered from the thread's memory
    third = ag_ui_run(ag_ui_url, thread, {"id": "u-3", "role": "user", "content": "bye"})
    run = httpx.get(f"{ag_ui_url}/runs/{third[0].metadata['dockrion']['run_id']}").json()
    assert len(run["output"]["messages"]) == 6


def test_a_handler_thread_keeps_every_runs_input_and_output_on_both_instances(
    tmp_path: Path, redis_server: Any
) -> None:
    """One thread, four runs, each its own way in and alternating two instances on Redis:
    `/invoke`, `/invoke/stream`, the WebSocket, a background run. Each instance lists the
    four with their inputs (redacted) and outputs, and shows the latest output as the
    thread's values."""
    extra = (
        REDACTING + f"streaming:\n  backend: redis\n  redis: {{url: '{redis_server.url}', "
        f"key_prefix: r{uuid.uuid4().hex[:8]}}}\n"
    )
    dockfile = write_project(tmp_path, "reply", extra, HANDLER)
    thread = {"thread_id": "notes"}
    with (
        serve_app(create_app(dockfile)) as first,
        serve_app(create_app(dockfile)) as second,
    ):
        said = httpx.post(f"{first}/invoke", json={"query": "one password=abc"}, params=thread)
        assert said.json()["output"] == {"answer": "one password=[REDACTED]", "thread": "notes"}
        streamed = httpx.post(f"{second}/invoke/stream", json={"query": "two"}, params=thread)
        events = [json.loads(m.data) for m in parse_sse(streamed.content)]
        assert events[-1]["type"] == "complete"
        assert events[-1]["output"] == {"answer": "two", "thread": "notes"}
        ws_url = first.replace("http://", "ws://") + "/invoke/ws?thread_id=notes"
        with connect(ws_url, open_timeout=30) as socket:
            socket.send(json.dumps({"query": "three"}))
            while (message := json.loads(socket.recv(timeout=30)))["type"] != "complete":
                pass
        assert message["output"] == {"answer": "three", "thread": "notes"}
        background = httpx.post(f"{second}/runs", json={"query": "four"}, params=thread).json()
        finished(second, background["run_id"])
        seen = []
        for url in (first, second):
            runs = httpx.get(f"{url}/threads/notes/runs").json()["runs"]
            assert [(r["via"], r["status"]) for r in runs] == [
                ("background", "COMPLETED"),
                ("websocket", "COMPLETED"),
                ("stream", "COMPLETED"),
                ("invoke", "COMPLETED"),
            ]
            assert [r["input"]["query"] for r in runs] == [
                "four",
                "three",
                "two",
                "one password=[REDACTED]",  # stored redacted, like every byte
            ]
            assert [r["output"]["answer"] for r in runs][-1] == "one password=[REDACTED]"
            assert runs[0]["run_id"] == background["run_id"]
            assert runs[2]["run_id"] == events[-1]["run_id"]
            thread_view = httpx.get(f"{url}/threads/notes").json()
            assert thread_view["values"] == {"answer": "four", "thread": "notes"}
            assert thread_view["status"] == "idle"
            assert thread_view["metadata"]["runs"] == 4
            seen += [f"{url}: {r['via']} {r['input']} -> {r['output']}" for r in runs]
        # background runs on the thread, from its record
        listed = httpx.get(f"{first}/runs", params=thread).json()["runs"]
        assert [r["run_id"] for r in listed] == [background["run_id"]]
    record("handler-thread-every-way-in", seen)


def test_a_failed_run_is_kept_with_its_error_and_the_thread_says_error(tmp_path: Path) -> None:
    module = (
        HANDLER
        + """
def fails(payload, context):
    raise ValueError("no password=abc here")
"""
    )
    dockfile = write_project(tmp_path, "fails", REDACTING, module)
    with serve_app(create_app(dockfile)) as url:
        failed = httpx.post(f"{url}/invoke", json={"query": "x"}, params={"thread_id": "bad"})
        assert failed.status_code == 500
        (run,) = httpx.get(f"{url}/threads/bad/runs").json()["runs"]
        assert (run["via"], run["status"], run["error"]["code"]) == (
            "invoke",
            "FAILED",
            "AGENT_EXECUTION_ERROR",
        )
        assert "abc" not in json.dumps(run)
        assert httpx.get(f"{url}/threads/bad").json()["status"] == "error"


def test_listings_page_by_cursor_and_runs_created_meanwhile_move_no_page(
    tmp_path: Path,
) -> None:
    dockfile = write_project(tmp_path, "reply", AUTH, HANDLER)
    with serve_app(create_app(dockfile, environ=KEYS)) as url:

        def background(query: str) -> str:
            sent = httpx.post(f"{url}/runs", json={"query": query}, headers=ANA)
            run_id: str = sent.json()["run_id"]
            finished_as(url, run_id)
            return run_id

        mine = [background(f"run {i}") for i in range(5)]
        httpx.post(f"{url}/runs", json={"query": "bob's"}, headers=BOB)
        first = httpx.get(f"{url}/runs", params={"limit": 2}, headers=ANA).json()
        assert [r["run_id"] for r in first["runs"]] == [mine[4], mine[3]]
        newer = [background("created meanwhile") for _ in range(2)]
        second = httpx.get(
            f"{url}/runs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=ANA
        ).json()
        assert [r["run_id"] for r in second["runs"]] == [mine[2], mine[1]]
        last = httpx.get(
            f"{url}/runs", params={"limit": 2, "cursor": second["next_cursor"]}, headers=ANA
        ).json()
        assert [r["run_id"] for r in last["runs"]] == [mine[0]]
        assert last["next_cursor"] is None
        top = httpx.get(f"{url}/runs", params={"limit": 3}, headers=ANA).json()["runs"]
        assert [r["run_id"] for r in top] == [newer[1], newer[0], mine[4]]
        # a thread's runs, whichever way they came in, page the same way
        for query in ("a", "b", "c"):
            assert invoke(url, query, "paged", ANA).status_code == 200
        page = httpx.get(f"{url}/threads/paged/runs", params={"limit": 2}, headers=ANA).json()
        assert [r["input"]["query"] for r in page["runs"]] == ["c", "b"]
        assert invoke(url, "d", "paged", ANA).status_code == 200
        rest = httpx.get(
            f"{url}/threads/paged/runs", params={"cursor": page["next_cursor"]}, headers=ANA
        ).json()
        assert [r["input"]["query"] for r in rest["runs"]] == ["a"]
        for bad in ("nope", "12.", ".run", "1.bad id", "x" * 300):
            refused = httpx.get(f"{url}/runs", params={"cursor": bad}, headers=ANA)
            assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR")


def finished_as(url: str, run_id: str) -> None:
    until(
        lambda: httpx.get(f"{url}/runs/{run_id}", headers=ANA).json()["status"] == "COMPLETED",
        f"run {run_id} completes",
    )


def test_a_thread_past_its_ttl_leaves_nothing_in_redis(tmp_path: Path, redis_server: Any) -> None:
    prefix = f"x{uuid.uuid4().hex[:8]}"
    extra = (
        "threads: {ttl_seconds: 1}\n"
        f"streaming:\n  backend: redis\n  redis: {{url: '{redis_server.url}', "
        f"key_prefix: {prefix}}}\n"
    )
    dockfile = write_project(tmp_path, "reply", extra, HANDLER)
    client = redis.Redis.from_url(redis_server.url)

    def stored() -> list[str]:
        return sorted(k.decode() for k in client.keys(f"{prefix}:thread:{{old}}*"))

    with serve_app(create_app(dockfile)) as url:
        for query in ("one", "two"):
            assert invoke(url, query, "old", {}).status_code == 200
        before = stored()
        assert before == [f"{prefix}:thread:{{old}}{k}" for k in ("", ":record", ":runs")]
        until(lambda: stored() == [], "the thread's keys expire")
        assert httpx.get(f"{url}/threads/old").status_code == 404
    record(
        "retention-thread-record-redis",
        [f"keys of thread 'old' (ttl_seconds: 1): before {before}", "after the ttl: []"],
    )

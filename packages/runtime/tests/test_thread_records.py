"""Threads for every agent and every way a run comes in: a thread's ownership lasts as
long as its retention; AG-UI runs use the runtime's checkpointer. Real uvicorn, real
redis-server, the protocol package's own models; no mocks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dockrion_runtime import create_app

from .conftest import serve_app, write_project
from .test_thread_turns import until

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ANA, BOB = {"X-API-Key": "key-ana"}, {"X-API-Key": "key-bob"}
KEYS = {"TEAM_API_KEY_ANA": ANA["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
AUTH = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"

HANDLER = """
def reply(payload, context):
    return {"answer": payload["query"], "thread": context.thread_id}
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
        left = client.pttl(f"{prefix}:thread:{{kept}}")
        if ttl is None:
            assert left == -1  # no expiry: the thread is its caller's until deleted
        else:
            assert 0 < left <= ttl * 1000
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

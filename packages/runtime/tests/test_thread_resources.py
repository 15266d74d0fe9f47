"""The caller's runs and threads: `GET /runs`, `GET /threads/{id}`, `GET /threads/{id}/runs`,
`DELETE /threads/{id}`, each owner-filtered like runs. Real uvicorn, a real LangGraph
graph on the runtime's checkpointer, API keys for two callers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dockrion_runtime import create_app

from .conftest import agent_module, serve_app, write_project
from .test_thread_turns import AGENT, finished, until
from .test_threads import GRAPH, record

ANA, BOB = {"X-API-Key": "key-ana"}, {"X-API-Key": "key-bob"}
KEYS = {"TEAM_API_KEY_ANA": ANA["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
AUTH = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"


def run(url: str, query: str, thread: str | None, who: dict[str, str]) -> dict[str, Any]:
    params = {"thread_id": thread} if thread else None
    started = httpx.post(f"{url}/runs", json={"query": query}, params=params, headers=who)
    assert started.status_code == 202, started.text
    ended = httpx.get(f"{url}/runs/{started.json()['run_id']}", headers=who)
    until(
        lambda: (
            httpx.get(f"{url}/runs/{started.json()['run_id']}", headers=who).json()["status"]
            == "COMPLETED"
        ),
        "the run completes",
    )
    body: dict[str, Any] = ended.json()
    return body


def test_a_caller_lists_its_own_runs_newest_first_by_status_and_thread(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "build", AUTH, GRAPH, entrypoint=True, framework="langgraph")
    with serve_app(create_app(dockfile, environ=KEYS)) as url:
        mine = [run(url, f"turn {i}", "chat", ANA)["run_id"] for i in range(3)]
        mine.append(run(url, "elsewhere", "other", ANA)["run_id"])
        run(url, "not ana's", "bobs", BOB)
        listed = httpx.get(f"{url}/runs", headers=ANA).json()
        assert [r["run_id"] for r in listed["runs"]] == mine[::-1]
        assert listed["next_offset"] is None
        on_chat = httpx.get(f"{url}/runs", params={"thread_id": "chat"}, headers=ANA).json()
        assert [r["run_id"] for r in on_chat["runs"]] == mine[2::-1]
        page = httpx.get(f"{url}/runs", params={"limit": 2}, headers=ANA).json()
        assert [r["run_id"] for r in page["runs"]] == mine[:1:-1]
        assert page["next_offset"] == 2
        rest = httpx.get(f"{url}/runs", params={"limit": 2, "offset": 2}, headers=ANA).json()
        assert [r["run_id"] for r in rest["runs"]] == mine[1::-1]
        done = httpx.get(f"{url}/runs", params={"status": "COMPLETED"}, headers=ANA).json()
        assert len(done["runs"]) == 4
        running = httpx.get(f"{url}/runs", params={"status": "RUNNING"}, headers=ANA).json()
        assert running["runs"] == []
        bad = httpx.get(f"{url}/runs", params={"status": "DONE"}, headers=ANA)
        assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_ERROR")
        assert httpx.get(f"{url}/runs").status_code == 401


def test_a_thread_shows_its_values_and_runs_and_can_be_deleted(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "build", AUTH, GRAPH, entrypoint=True, framework="langgraph")
    with serve_app(create_app(dockfile, environ=KEYS)) as url:
        first = run(url, "hello", "chat", ANA)
        second = run(url, "again", "chat", ANA)
        thread = httpx.get(f"{url}/threads/chat", headers=ANA).json()
        assert thread["status"] == "idle"
        assert thread["values"]["turns"] == ["hello", "again"]
        assert thread["metadata"]["runs"] == 2
        assert thread["created_at"] <= thread["updated_at"]
        runs = httpx.get(f"{url}/threads/chat/runs", headers=ANA).json()["runs"]
        assert [r["run_id"] for r in runs] == [second["run_id"], first["run_id"]]
        # another caller's thread does not exist for bob, and bob cannot delete it
        for method in ("GET", "DELETE"):
            refused = httpx.request(method, f"{url}/threads/chat", headers=BOB)
            assert (refused.status_code, refused.json()["code"]) == (404, "NOT_FOUND")
        assert httpx.get(f"{url}/threads/never-used", headers=ANA).status_code == 404
        deleted = httpx.delete(f"{url}/threads/chat", headers=ANA)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["runs_deleted"] == 2
        assert httpx.get(f"{url}/threads/chat", headers=ANA).status_code == 404
        assert httpx.get(f"{url}/runs/{first['run_id']}", headers=ANA).status_code == 404
        # its checkpoints are gone: the next run on the id starts a new conversation, and
        # its ownership is gone: bob may take the id now
        fresh = run(url, "new start", "chat", BOB)
        assert fresh["run_id"]
        assert httpx.get(f"{url}/threads/chat", headers=BOB).json()["values"]["turns"] == [
            "new start"
        ]


def test_a_handler_thread_shows_its_runs_values_and_a_busy_thread_is_kept(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    url = serve("hold", module=AGENT)
    module = agent_module(tmp_path)
    started = httpx.post(f"{url}/runs", json={"query": "one"}, params={"thread_id": "h"})
    until(lambda: module.seen, "the run enters the agent")
    assert httpx.get(f"{url}/threads/h").json()["status"] == "busy"
    busy = httpx.delete(f"{url}/threads/h")
    assert (busy.status_code, busy.json()["code"]) == (409, "THREAD_BUSY")
    module.gate.set()
    finished(url, started.json()["run_id"])
    thread = httpx.get(f"{url}/threads/h").json()
    assert thread["status"] == "idle"
    assert thread["values"] == {"answer": "one", "thread": "h"}


def test_a_conversation_alternating_two_instances_on_redis_and_postgres(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> None:
    extra = (
        AUTH
        + "threads: {checkpointer: postgres, url: '${DATABASE_URL}'}\n"
        + "streaming:\n  backend: redis\n"
        + f"  redis: {{url: '{redis_server.url}', key_prefix: t{uuid.uuid4().hex[:8]}}}\n"
    )
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    environ = {**KEYS, "DATABASE_URL": postgres_server.url}
    seen = []
    with (
        serve_app(create_app(dockfile, environ=environ)) as first,
        serve_app(create_app(dockfile, environ=environ)) as second,
    ):
        for i, query in enumerate(["my name is Ana", "I like tea", "and jazz", "who am I?"]):
            url = (first, second)[i % 2]
            answer = httpx.post(
                f"{url}/invoke", json={"query": query}, params={"thread_id": "chat"}, headers=ANA
            ).json()["output"]["answer"]
            seen.append(f"instance {i % 2 + 1}: {query!r} -> {answer!r}")
        assert answer == "my name is Ana | I like tea | and jazz | who am I?"
        # the thread is ana's on both instances
        for url in (first, second):
            refused = httpx.post(
                f"{url}/invoke", json={"query": "hi"}, params={"thread_id": "chat"}, headers=BOB
            )
            assert refused.status_code == 404
    record("two-instances-redis-postgres", seen)

"""Threads that last: the checkpointer the runtime gives a LangGraph graph compiled without
one (in memory, a SQLite file, PostgreSQL), across restarts of the server and of
PostgreSQL. Real uvicorn, real SQLite, a real PostgreSQL server; no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import kill_server, serve_app, start_server, write_project

pytest.importorskip("langgraph")

# A graph compiled without a checkpointer that remembers every turn of its thread.
GRAPH = """
import operator
from typing import Annotated, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    query: str
    turns: Annotated[list[str], operator.add]
    answer: str


def reply(state: State) -> dict:
    turns = [*state.get("turns", []), state["query"]]
    return {"turns": [state["query"]], "answer": " | ".join(turns)}


def graph():
    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder


def build():
    return graph().compile()


def build_with_its_own():
    return graph().compile(checkpointer=InMemorySaver())
"""

TRANSCRIPTS = os.environ.get("DOCKRION_TRANSCRIPTS")


def turn(url: str, query: str, thread: str | None = "chat-1") -> Any:
    params = {"thread_id": thread} if thread else None
    response = httpx.post(f"{url}/invoke", json={"query": query}, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["output"]["answer"]


def record(name: str, lines: list[str]) -> None:
    """Keep what a test saw, for a human to read (only when DOCKRION_TRANSCRIPTS names a
    folder)."""
    if TRANSCRIPTS:
        Path(TRANSCRIPTS, f"{name}.txt").write_text("\n".join(lines) + "\n")


def test_a_graph_compiled_without_a_checkpointer_keeps_threads_in_memory(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    url = serve("build", module=GRAPH, entrypoint=True, framework="langgraph")
    assert turn(url, "hello") == "hello"
    assert turn(url, "how are you?") == "hello | how are you?"
    assert turn(url, "another", thread="chat-2") == "another"
    # a run without a thread stores nothing and remembers nothing
    assert turn(url, "alone", thread=None) == "alone"
    assert turn(url, "alone again", thread=None) == "alone again"
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".db", ".sqlite")]


def test_a_graph_compiled_with_its_own_checkpointer_keeps_it(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    extra = "threads: {checkpointer: sqlite, path: threads.db}\n"
    url = serve("build_with_its_own", extra, GRAPH, entrypoint=True, framework="langgraph")
    assert turn(url, "one") == "one"
    assert turn(url, "two") == "one | two"
    assert not (tmp_path / "threads.db").exists()


def test_a_sqlite_conversation_continues_after_serve_restarts(tmp_path: Path) -> None:
    extra = "threads: {checkpointer: sqlite, path: threads.db}\n"
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    seen = []
    process, url = start_server(dockfile)
    try:
        seen.append(f"turn 1 -> {turn(url, 'my name is Ana')!r}")
        seen.append(f"turn 2 -> {turn(url, 'I like tea')!r}")
    finally:
        kill_server(process)  # SIGKILL: nothing is flushed on the way out
    seen.append("-- serve killed (SIGKILL) and started again --")
    process, url = start_server(dockfile)
    try:
        answer = turn(url, "what do you remember?")
        seen.append(f"turn 3 -> {answer!r}")
        assert answer == "my name is Ana | I like tea | what do you remember?"
    finally:
        kill_server(process)
    assert (tmp_path / "threads.db").exists()
    record("sqlite-restart", seen)


def test_a_postgres_conversation_survives_a_postgres_restart(
    tmp_path: Path, postgres_server: Any
) -> None:
    extra = "threads: {checkpointer: postgres, url: '${DATABASE_URL}', pool_size: 2}\n"
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    environ = {"DATABASE_URL": postgres_server.url}
    seen = []
    with serve_app(create_app(dockfile, environ=environ)) as first:
        seen.append(f"instance 1, turn 1 -> {turn(first, 'my name is Ana')!r}")
        seen.append(f"instance 1, turn 2 -> {turn(first, 'I like tea')!r}")
        postgres_server.restart()
        seen.append("-- PostgreSQL restarted (pg_ctl stop -m fast; start) --")
        answer = turn(first, "still there?")
        seen.append(f"instance 1, turn 3 -> {answer!r}")
        assert answer == "my name is Ana | I like tea | still there?"
        with serve_app(create_app(dockfile, environ=environ)) as second:
            answer = turn(second, "and on another instance?")
            seen.append(f"instance 2, turn 4 -> {answer!r}")
            assert answer.startswith("my name is Ana | I like tea | still there? | and on")
    stored = postgres_server.query("select count(*) from checkpoints where thread_id = 'chat-1'")
    seen.append(f"checkpoints stored for chat-1: {stored}")
    assert int(stored) > 0
    record("postgres-restart", seen)


def test_a_sqlite_checkpointer_for_an_agent_that_is_not_a_graph_is_refused(
    tmp_path: Path,
) -> None:
    extra = "threads: {checkpointer: sqlite, path: threads.db}\n"
    dockfile = write_project(tmp_path, "echo", extra)
    with serve_app(create_app(dockfile)) as url:
        ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 503
    assert "keeps the threads of LangGraph graphs" in json.dumps(ready.json())


def until_true(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def sqlite_count(path: Path, thread: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread,))
        return int(row.fetchone()[0])


def test_a_sqlite_thread_past_its_ttl_is_deleted_with_its_checkpoints(tmp_path: Path) -> None:
    extra = "threads: {checkpointer: sqlite, path: threads.db, ttl_seconds: 4}\n"
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    database = tmp_path / "threads.db"
    with serve_app(create_app(dockfile)) as url:
        assert turn(url, "remember me", thread="old") == "remember me"
        before = sqlite_count(database, "old")
        assert before > 0
        until_true(lambda: sqlite_count(database, "old") == 0, "the thread's checkpoints go")
        assert httpx.get(f"{url}/threads/old").status_code == 404
        # the id starts a new conversation
        assert turn(url, "hello again", thread="old") == "hello again"
    record("retention-sqlite", [f"checkpoints of 'old': {before} before, 0 after ttl_seconds: 4"])


def test_a_postgres_thread_past_its_ttl_is_deleted_with_its_checkpoints(
    tmp_path: Path, postgres_server: Any
) -> None:
    extra = "threads: {checkpointer: postgres, url: '${DATABASE_URL}', ttl_seconds: 4}\n"
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )

    def count(table: str) -> int:
        return int(postgres_server.query(f"select count(*) from {table} where thread_id = 'old'"))

    environ = {"DATABASE_URL": postgres_server.url}
    with serve_app(create_app(dockfile, environ=environ)) as url:
        turn(url, "remember me", thread="old")
        before = {table: count(table) for table in ("checkpoints", "checkpoint_blobs")}
        assert before["checkpoints"] > 0
        until_true(lambda: count("checkpoints") == 0, "the thread's checkpoints go")
        after = {table: count(table) for table in ("checkpoints", "checkpoint_blobs")}
        assert after == {"checkpoints": 0, "checkpoint_blobs": 0}
    record("retention-postgres", [f"rows of thread 'old': before {before}, after {after}"])

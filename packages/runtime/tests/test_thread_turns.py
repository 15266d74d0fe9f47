"""One run at a time per thread, on every instance: two runs sent at once to one thread,
under each multitask strategy, on one instance and on two sharing Redis. Real uvicorn,
real redis-server; the agent holds its thread until the test lets it go, so no assertion
depends on timing."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import agent_module, serve_app, write_project
from .test_threads import record

# Each run notes when it enters and leaves the agent, and waits for the gate in between.
AGENT = """
import threading

seen = []
gate = threading.Event()


def hold(payload, context):
    seen.append(("enter", payload["query"], context.thread_id))
    gate.wait(60)
    seen.append(("exit", payload["query"], context.thread_id))
    return {"answer": payload["query"], "thread": context.thread_id}
"""

Serve = Callable[..., str]


def until(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return value


def post_runs(urls: list[str], queries: list[str], **params: str) -> list[httpx.Response]:
    """POST /runs for each query at once (one thread per request), on `urls` in turn."""
    with ThreadPoolExecutor(len(queries)) as pool:
        futures = [
            pool.submit(
                httpx.post,
                f"{urls[i % len(urls)]}/runs",
                json={"query": query},
                params=params,
                timeout=60,
            )
            for i, query in enumerate(queries)
        ]
        return [future.result() for future in futures]


def finished(url: str, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{url}/runs/{run_id}").json()
        return body if body["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    result: dict[str, Any] = until(done, f"run {run_id} ends")
    return result


def no_overlap(seen: list[tuple[str, str, str]]) -> None:
    """Each run left the agent before the next one entered it."""
    kinds = [kind for kind, _, _ in seen]
    assert kinds == ["enter", "exit"] * (len(kinds) // 2), seen
    for enter, exit_ in zip(seen[::2], seen[1::2], strict=True):
        assert enter[1] == exit_[1], seen


def enqueue_two(urls: list[str], module: Any, name: str) -> None:
    accepted = post_runs(urls, ["first", "second"], thread_id="chat")
    assert [r.status_code for r in accepted] == [202, 202], [r.text for r in accepted]
    runs = {r.json()["run_id"] for r in accepted}
    until(lambda: module.seen, "a run enters the agent")
    entered = module.seen[0][1]
    statuses = {run_id: httpx.get(f"{urls[0]}/runs/{run_id}").json()["status"] for run_id in runs}
    # one runs, the other waits in line: accepted, not started
    assert sorted(statuses.values()) == ["ACCEPTED", "RUNNING"], statuses
    lines = [f"sent 'first' and 'second' at once on thread 'chat' via {len(urls)} instance(s)"]
    lines += [f"  202 {r.json()['run_id']} status={r.json()['status']}" for r in accepted]
    lines.append(f"while '{entered}' holds the thread: {json.dumps(statuses)}")
    module.gate.set()
    ends = [finished(urls[-1], run_id) for run_id in runs]
    assert {e["status"] for e in ends} == {"COMPLETED"}
    no_overlap(module.seen)
    lines.append(f"agent saw: {module.seen}")
    lines += [f"  {e['run_id']}: {e['status']} output={e['output']}" for e in ends]
    record(name, lines)


def test_enqueue_is_the_default_two_runs_take_turns(serve: Serve, tmp_path: Path) -> None:
    url = serve("hold", module=AGENT)
    enqueue_two([url], agent_module(tmp_path), "enqueue-one-instance")


def test_reject_refuses_the_second_run_with_thread_busy(serve: Serve, tmp_path: Path) -> None:
    url = serve("hold", module=AGENT)
    module = agent_module(tmp_path)
    answers = post_runs([url], ["first", "second"], thread_id="chat", multitask_strategy="reject")
    codes = sorted(r.status_code for r in answers)
    assert codes == [202, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409).json()
    assert refused["code"] == "THREAD_BUSY"
    # another thread is not held up
    other = httpx.post(
        f"{url}/runs", json={"query": "elsewhere"}, params={"thread_id": "other"}
    ).json()
    until(lambda: len(module.seen) == 2, "the other thread's run enters the agent")
    module.gate.set()
    run_id = next(r for r in answers if r.status_code == 202).json()["run_id"]
    assert finished(url, run_id)["status"] == "COMPLETED"
    assert finished(url, other["run_id"])["status"] == "COMPLETED"
    # the thread is free again: reject accepts the next run
    again = httpx.post(
        f"{url}/runs",
        json={"query": "third"},
        params={"thread_id": "chat", "multitask_strategy": "reject"},
    )
    assert again.status_code == 202, again.text
    assert finished(url, again.json()["run_id"])["status"] == "COMPLETED"
    record(
        "reject-one-instance",
        [
            "sent 'first' and 'second' at once on thread 'chat', multitask_strategy=reject",
            *[f"  {r.status_code} {r.text}" for r in answers],
            "after the run ended, 'third' with reject: " + str(again.status_code),
        ],
    )


def test_the_dockfile_sets_the_default_strategy(serve: Serve, tmp_path: Path) -> None:
    url = serve("hold", "threads: {multitask_strategy: reject}\n", AGENT)
    module = agent_module(tmp_path)
    first = httpx.post(f"{url}/runs", json={"query": "first"}, params={"thread_id": "chat"})
    assert first.status_code == 202
    until(lambda: module.seen, "the first run enters the agent")
    refused = httpx.post(f"{url}/invoke", json={"query": "second"}, params={"thread_id": "chat"})
    assert (refused.status_code, refused.json()["code"]) == (409, "THREAD_BUSY")
    queued = post_runs([url], ["queued"], thread_id="chat", multitask_strategy="enqueue")[0]
    assert queued.status_code == 202
    module.gate.set()
    assert finished(url, queued.json()["run_id"])["status"] == "COMPLETED"
    no_overlap(module.seen)


def test_invoke_on_a_busy_thread_waits_its_turn(serve: Serve, tmp_path: Path) -> None:
    url = serve("hold", module=AGENT)
    module = agent_module(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        calls = [
            pool.submit(
                httpx.post,
                f"{url}/invoke",
                json={"query": query},
                params={"thread_id": "chat"},
                timeout=60,
            )
            for query in ("first", "second")
        ]
        until(lambda: module.seen, "a call enters the agent")
        module.gate.set()
        answers = [call.result() for call in calls]
    assert [a.status_code for a in answers] == [200, 200]
    no_overlap(module.seen)


def test_an_unknown_strategy_is_refused(serve: Serve) -> None:
    url = serve("hold", module=AGENT)
    refused = httpx.post(
        f"{url}/runs",
        json={"query": "q"},
        params={"thread_id": "chat", "multitask_strategy": "sometimes"},
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR")


@pytest.fixture
def redis_dockfile(tmp_path: Path, redis_server: Any) -> Path:
    extra = (
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, "
        f"key_prefix: t{uuid.uuid4().hex[:8]}}}\n"
    )
    return write_project(tmp_path, "hold", extra, AGENT)


def test_enqueue_across_two_instances_takes_turns(redis_dockfile: Path, tmp_path: Path) -> None:
    with (
        serve_app(create_app(redis_dockfile)) as first,
        serve_app(create_app(redis_dockfile)) as second,
    ):
        enqueue_two([first, second], agent_module(tmp_path), "enqueue-two-instances")


def test_reject_across_two_instances(redis_dockfile: Path, tmp_path: Path) -> None:
    with (
        serve_app(create_app(redis_dockfile)) as first,
        serve_app(create_app(redis_dockfile)) as second,
    ):
        module = agent_module(tmp_path)
        answers = post_runs(
            [first, second], ["first", "second"], thread_id="chat", multitask_strategy="reject"
        )
        assert sorted(r.status_code for r in answers) == [202, 409], [r.text for r in answers]
        assert next(r for r in answers if r.status_code == 409).json()["code"] == "THREAD_BUSY"
        module.gate.set()
        run_id = next(r for r in answers if r.status_code == 202).json()["run_id"]
        assert finished(first, run_id)["status"] == "COMPLETED"
        record(
            "reject-two-instances",
            [
                "sent 'first' (instance 1) and 'second' (instance 2) at once, reject",
                *[f"  {r.status_code} {r.text}" for r in answers],
            ],
        )


# A graph whose second step waits for the test on "slow" queries, after the first step
# wrote its checkpoint (the progress interrupt keeps and rollback removes).
GRAPH = """
import asyncio
import operator
import threading
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

gate = threading.Event()
entered = threading.Event()


class State(TypedDict, total=False):
    query: str
    turns: Annotated[list[str], operator.add]
    answer: str


def note(state: State) -> dict:
    return {"turns": [state["query"]]}


async def reply(state: State) -> dict:
    if state["query"].startswith("slow"):
        entered.set()
        while not gate.is_set():
            await asyncio.sleep(0.02)
    return {"answer": " | ".join(state["turns"])}


def build():
    builder = StateGraph(State)
    builder.add_node("note", note)
    builder.add_node("reply", reply)
    builder.add_edge(START, "note")
    builder.add_edge("note", "reply")
    builder.add_edge("reply", END)
    return builder.compile()
"""


def interrupted_by(url: str, module: Any, strategy: str) -> tuple[dict[str, Any], list[str]]:
    """A turn, then a slow run held in its second step, then a run sent with `strategy`:
    the slow run's end and the new run's answer."""
    thread = {"thread_id": "chat"}
    first = httpx.post(f"{url}/runs", json={"query": "first"}, params=thread).json()
    assert finished(url, first["run_id"])["output"]["answer"] == "first"
    slow = httpx.post(f"{url}/runs", json={"query": "slow"}, params=thread).json()
    until(module.entered.is_set, "the slow run reaches its second step")
    sent = httpx.post(
        f"{url}/runs", json={"query": "next"}, params={**thread, "multitask_strategy": strategy}
    )
    assert sent.status_code == 202, sent.text
    after = finished(url, sent.json()["run_id"])
    stopped = finished(url, slow["run_id"])
    module.gate.set()
    lines = [
        f"'first' -> {first['run_id']}: COMPLETED, answer 'first'",
        f"'slow' -> {slow['run_id']}: held in its second step",
        f"'next' with multitask_strategy={strategy} -> {sent.status_code} {sent.json()['status']}",
        f"'slow' ended {stopped['status']}",
        f"'next' ended {after['status']}, answer {after['output']['answer']!r}",
    ]
    assert stopped["status"] == "CANCELLED"
    assert after["status"] == "COMPLETED"
    return after, lines


@pytest.mark.parametrize("checkpointer", ["memory", "sqlite"])
def test_interrupt_cancels_the_running_run_and_keeps_its_progress(
    serve: Serve, tmp_path: Path, checkpointer: str
) -> None:
    extra = "threads: {checkpointer: sqlite, path: t.db}\n" if checkpointer == "sqlite" else ""
    url = serve("build", extra, GRAPH, entrypoint=True, framework="langgraph")
    after, lines = interrupted_by(url, agent_module(tmp_path), "interrupt")
    assert after["output"]["answer"] == "first | slow | next"
    record(f"interrupt-{checkpointer}", lines)


@pytest.mark.parametrize("checkpointer", ["memory", "sqlite"])
def test_rollback_cancels_the_running_run_and_removes_its_progress(
    serve: Serve, tmp_path: Path, checkpointer: str
) -> None:
    extra = "threads: {checkpointer: sqlite, path: t.db}\n" if checkpointer == "sqlite" else ""
    url = serve("build", extra, GRAPH, entrypoint=True, framework="langgraph")
    after, lines = interrupted_by(url, agent_module(tmp_path), "rollback")
    assert after["output"]["answer"] == "first | next"
    record(f"rollback-{checkpointer}", lines)


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_interrupt_and_rollback_across_two_instances_on_redis_and_postgres(
    tmp_path: Path, redis_server: Any, postgres_server: Any, strategy: str
) -> None:
    extra = (
        "threads: {checkpointer: postgres, url: '${DATABASE_URL}'}\n"
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, "
        f"key_prefix: t{uuid.uuid4().hex[:8]}}}\n"
    )
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    environ = {"DATABASE_URL": postgres_server.url}
    with (
        serve_app(create_app(dockfile, environ=environ)) as first,
        serve_app(create_app(dockfile, environ=environ)) as second,
    ):
        module = agent_module(tmp_path)
        thread = {"thread_id": "chat"}
        done = httpx.post(f"{first}/runs", json={"query": "first"}, params=thread).json()
        finished(first, done["run_id"])
        slow = httpx.post(f"{first}/runs", json={"query": "slow"}, params=thread).json()
        until(module.entered.is_set, "the slow run reaches its second step")
        sent = httpx.post(
            f"{second}/runs",
            json={"query": "next"},
            params={**thread, "multitask_strategy": strategy},
        )
        assert sent.status_code == 202, sent.text
        after = finished(second, sent.json()["run_id"])
        assert finished(second, slow["run_id"])["status"] == "CANCELLED"
        module.gate.set()
        expected = "first | slow | next" if strategy == "interrupt" else "first | next"
        assert after["output"]["answer"] == expected
        record(
            f"{strategy}-two-instances",
            [
                "instance 1: 'first' COMPLETED; 'slow' held in its second step",
                f"instance 2: 'next' with multitask_strategy={strategy} -> 202",
                f"'slow' CANCELLED; 'next' answer {after['output']['answer']!r}",
            ],
        )


@pytest.mark.parametrize("checkpointer", ["sqlite", "postgres"])
def test_rollback_leaves_the_rows_of_a_thread_the_run_never_touched(
    tmp_path: Path, request: pytest.FixtureRequest, checkpointer: str
) -> None:
    """Thread 'chat': a turn, a slow run rolled back, a turn; thread 'ref': the two turns
    alone. Every table holds as many rows of 'chat' as of 'ref', counted in the database:
    the rolled-back run's checkpoints, writes and channel values (PostgreSQL's blobs) are
    gone."""
    if checkpointer == "sqlite":
        extra = "threads: {checkpointer: sqlite, path: t.db}\n"
        tables = ("checkpoints", "writes")
        environ: dict[str, str] = {}

        def count(table: str, thread: str) -> int:
            with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
                query = f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?"
                return int(db.execute(query, (thread,)).fetchone()[0])
    else:
        postgres = request.getfixturevalue("postgres_server")
        extra = "threads: {checkpointer: postgres, url: '${DATABASE_URL}'}\n"
        tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        environ = {"DATABASE_URL": postgres.url}
        prefix = uuid.uuid4().hex[:8]

        def count(table: str, thread: str) -> int:
            sql = f"select count(*) from {table} where thread_id = '{prefix}-{thread}'"
            return int(postgres.query(sql))

    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    with serve_app(create_app(dockfile, environ=environ)) as url:
        module = agent_module(tmp_path)
        name = (lambda t: f"{prefix}-{t}") if checkpointer == "postgres" else (lambda t: t)

        def turn(query: str, thread: str, **extra_params: str) -> dict[str, Any]:
            params = {"thread_id": name(thread), **extra_params}
            sent = httpx.post(f"{url}/runs", json={"query": query}, params=params)
            assert sent.status_code == 202, sent.text
            return sent.json()

        for thread in ("ref", "chat"):
            finished(url, turn("first", thread)["run_id"])
        before = {table: count(table, "chat") for table in tables}
        slow = turn("slow", "chat")
        until(module.entered.is_set, "the slow run reaches its second step")
        during = {table: count(table, "chat") for table in tables}
        after = finished(url, turn("next", "chat", multitask_strategy="rollback")["run_id"])
        assert finished(url, slow["run_id"])["status"] == "CANCELLED"
        module.gate.set()
        assert after["output"]["answer"] == "first | next"
        finished(url, turn("next", "ref")["run_id"])
        rolled_back = {table: count(table, "chat") for table in tables}
        reference = {table: count(table, "ref") for table in tables}
    assert rolled_back == reference, (rolled_back, reference)
    assert all(during[t] >= before[t] for t in tables) and during != before
    record(
        f"rollback-rows-{checkpointer}",
        [
            f"rows of thread 'chat' after its first turn: {before}",
            f"while the slow run holds its second step: {during}",
            f"after rollback and the next turn: {rolled_back}",
            f"thread 'ref' (first, next; no slow run): {reference}",
        ],
    )


def held_call(way: str, url: str, query: str) -> Any:
    """A call on thread 'chat' that holds it: what its client got in the end (the events
    of a stream or a WebSocket, the response of /invoke)."""
    body, thread = {"query": query}, {"thread_id": "chat"}
    if way == "invoke":
        return httpx.post(f"{url}/invoke", json=body, params=thread, timeout=60)
    if way == "stream":
        answer = httpx.post(f"{url}/invoke/stream", json=body, params=thread, timeout=60)
        return [json.loads(m.data) for m in parse_sse(answer.content)]
    events = []
    with connect(url.replace("http://", "ws://") + "/invoke/ws?thread_id=chat") as socket:
        socket.send(json.dumps(body))
        while events[-1:] == [] or events[-1]["type"] not in ("complete", "error", "cancelled"):
            events.append(json.loads(socket.recv(timeout=60)))
    return events


def stop_a_held_call(urls: list[str], module: Any, way: str, strategy: str) -> list[str]:
    """A turn, then a slow call (`way`) held in its second step on `urls[0]`, then a
    background run sent with `strategy` to `urls[-1]`: the call is stopped, the new run
    answers. Returns the transcript."""
    first = httpx.post(f"{urls[0]}/runs", json={"query": "first"}, params={"thread_id": "chat"})
    assert finished(urls[0], first.json()["run_id"])["status"] == "COMPLETED"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(held_call, way, urls[0], "slow")
        until(module.entered.is_set, "the slow call reaches its second step")
        sent = httpx.post(
            f"{urls[-1]}/runs",
            json={"query": "next"},
            params={"thread_id": "chat", "multitask_strategy": strategy},
        )
        assert sent.status_code == 202, sent.text
        after = finished(urls[-1], sent.json()["run_id"])
        got = held.result(timeout=60)
    module.gate.set()
    expected = "first | slow | next" if strategy == "interrupt" else "first | next"
    assert (after["status"], after["output"]["answer"]) == ("COMPLETED", expected)
    if way == "invoke":
        assert (got.status_code, got.json()["code"]) == (409, "CONFLICT"), got.text
        assert strategy in got.json()["error"]
        ending = f"{got.status_code} {got.json()}"
    else:
        assert got[-1]["type"] == "cancelled", got[-1]
        assert got[-1]["reason"] == f"a new run on the thread ({strategy})"
        ending = f"last event {json.dumps(got[-1])}"
    runs = httpx.get(f"{urls[0]}/threads/chat/runs").json()["runs"]
    assert [(r["via"], r["status"]) for r in runs] == [
        ("background", "COMPLETED"),
        (way, "CANCELLED"),
        ("background", "COMPLETED"),
    ]
    return [
        f"'first' (background) COMPLETED on {len(urls)} instance(s)",
        f"'slow' over {way} on instance 1, held in its second step",
        f"'next' with multitask_strategy={strategy} on instance {len(urls)} -> 202",
        f"the {way} call ended: {ending}",
        f"'next' ended {after['status']}, answer {after['output']['answer']!r}",
    ]


@pytest.mark.parametrize(
    ("way", "strategy"),
    [("stream", "interrupt"), ("websocket", "rollback"), ("invoke", "rollback")],
)
def test_interrupt_and_rollback_stop_a_call_that_holds_the_thread(
    serve: Serve, tmp_path: Path, way: str, strategy: str
) -> None:
    extra = "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n"
    url = serve("build", extra, GRAPH, entrypoint=True, framework="langgraph")
    lines = stop_a_held_call([url], agent_module(tmp_path), way, strategy)
    record(f"{strategy}-a-{way}-call", lines)


def test_rollback_stops_a_stream_held_on_another_instance(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> None:
    extra = (
        "threads: {checkpointer: postgres, url: '${DATABASE_URL}'}\n"
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, "
        f"key_prefix: t{uuid.uuid4().hex[:8]}}}\n"
    )
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    environ = {"DATABASE_URL": postgres_server.url}
    with (
        serve_app(create_app(dockfile, environ=environ)) as first,
        serve_app(create_app(dockfile, environ=environ)) as second,
    ):
        lines = stop_a_held_call([first, second], agent_module(tmp_path), "stream", "rollback")
    record("rollback-a-stream-two-instances", lines)

"""A LangGraph run continues from its last checkpoint on another worker: the ReAct graph of
examples/langgraph-react (its scripted chat model, counted), threads kept in a real
PostgreSQL, workers and an API instance as real processes on a real redis-server. The
worker running the tool is killed with SIGKILL; another worker continues the thread from
the checkpoint after the model's first answer, so the model is never called twice for it,
and a subscriber connected to the API all along sees one contiguous log."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_run_queue import assert_one_contiguous_log, deployment, events_of
from .test_threads import record

pytest.importorskip("langgraph")

__all__ = ["deployment"]  # the fixture, shared with test_run_queue.py

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"

GRAPH = (
    """
import os, pathlib, sys, time
sys.path.insert(0, """
    + repr(str(EXAMPLE))
    + """)
import react
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

MARKS = pathlib.Path({marks!r})


class CountedModel(react.ScriptedChatModel):
    # every call of the model, one line each, whichever process makes it
    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        with (MARKS / "model-calls").open("a") as calls:
            calls.write(f"{{os.getpid()}} {{len(messages)}}\\n")
        yield from super()._stream(messages, stop, run_manager, **kwargs)


@tool
def get_weather(city: str) -> str:
    \"\"\"The current weather in a city.\"\"\"
    (MARKS / f"tool.{{os.getpid()}}").write_text("")
    while not (MARKS / "release").exists():
        time.sleep(0.02)
    return react.WEATHER.get(city.lower(), "unknown")


def build():
    model = CountedModel().bind_tools([get_weather])

    async def agent(state: MessagesState) -> dict:
        return {{"messages": [await model.ainvoke(state["messages"])]}}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()  # the runtime gives it the PostgreSQL checkpointer
"""
)


def _tool_runners(marks: Path) -> list[int]:
    return [int(mark.suffix[1:]) for mark in marks.glob("tool.*")]


def _wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within 60 s")


def test_a_killed_workers_langgraph_run_continues_from_its_checkpoint(
    deployment: Any, postgres_server: Any
) -> None:
    deploy = deployment(
        "retry: false",
        module=GRAPH,
        target='entrypoint: "queue_agent:build", framework: langgraph',
        extra="threads: {checkpointer: postgres, url: '${DATABASE_URL}', pool_size: 2}\n",
        environ={"DATABASE_URL": postgres_server.url},
    )
    api, started = deploy.start(workers=2)
    workers = {w.pid: w for w in started}
    question = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
    created = httpx.post(f"{api}/runs", json=question, params={"thread_id": "t1"}, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    seen: list[dict[str, Any]] = []
    connections: list[int] = []
    subscriber = threading.Thread(
        target=lambda: seen.extend(events_of(api, run_id, connections)), daemon=True
    )
    subscriber.start()
    (first,) = _wait_for(lambda: _tool_runners(deploy.marks), "tool call")
    calls_before = (deploy.marks / "model-calls").read_text().splitlines()
    os.kill(first, signal.SIGKILL)  # mid-tool: the model's first answer is checkpointed
    workers[first].wait(30)
    second = _wait_for(lambda: set(_tool_runners(deploy.marks)) - {first}, "second worker")
    (deploy.marks / "release").write_text("")
    subscriber.join(120)
    calls = (deploy.marks / "model-calls").read_text().splitlines()
    assert_one_contiguous_log(seen)
    assert len(connections) == 1  # the subscriber stayed connected through the API
    assert seen[-1]["type"] == "complete"
    answer = seen[-1]["output"]["messages"][-1]["content"]
    assert "18°C and sunny" in answer
    assert [e.get("attempt") for e in seen if e["type"] == "started"] == [None, 2]
    # the model's first answer (a tool call) came from the dead worker's checkpoint; only
    # the answer after the tool was asked of the model again
    assert [line.split()[0] for line in calls_before] == [str(first)]
    assert [line.split()[0] for line in calls] == [str(first), str(next(iter(second)))]
    run = httpx.get(f"{api}/runs/{run_id}", timeout=30).json()
    assert (run["status"], run["attempt"]) == ("COMPLETED", 2)
    record(
        "queue-langgraph-kill",
        [
            f"worker {first} killed (SIGKILL) in the tool; worker {next(iter(second))} "
            "continued from the checkpoint",
            f"model calls: {len(calls)} ({calls})",
            f"events: {len(seen)}, sequences 0..{seen[-1]['sequence']}, "
            f"one connection: {len(connections) == 1}, last: {seen[-1]['type']}",
        ],
    )

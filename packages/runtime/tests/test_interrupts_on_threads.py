"""Interrupts of a graph compiled without a checkpointer (the runtime gives it one): a
background run sent without a thread gets one of its own, so its interrupt can be
resumed, as for a graph compiled with its own. Real uvicorn, real LangGraph; no mocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("langgraph")

# A graph compiled without a checkpointer whose node asks before it answers.
GRAPH = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    query: str
    answer: str


def ask(state: State) -> dict:
    decision = interrupt({"question": f"answer {state['query']!r}?"})
    return {"answer": f"{state['query']}: {decision}"}


def build():
    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile()
"""


def finished(url: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run = httpx.get(f"{url}/runs/{run_id}", timeout=30).json()
        if run["status"] not in ("ACCEPTED", "RUNNING"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_a_background_run_without_a_thread_can_be_resumed(serve: Callable[..., str]) -> None:
    url = serve("build", module=GRAPH, entrypoint=True, framework="langgraph")
    created = httpx.post(f"{url}/runs", json={"query": "tea"}, timeout=30).json()
    run = finished(url, created["run_id"])
    assert run["status"] == "COMPLETED" and run["output"]["__interrupt__"]
    assert run["metadata"]["thread_id"].startswith("run-")

    resumed = httpx.post(f"{url}/runs/{run['run_id']}/resume", json="yes", timeout=30)
    assert resumed.status_code == 202, resumed.text
    after = finished(url, resumed.json()["run_id"])
    assert after["status"] == "COMPLETED", after
    assert after["output"]["answer"] == "tea: yes"
    assert after["metadata"]["thread_id"] == run["metadata"]["thread_id"]

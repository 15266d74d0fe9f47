"""A run cancelled before its agent started never starts it: its queued call leaves the
worker-thread queue, so it costs nothing and delays nobody."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from dockrion_runtime.agents import AgentThreads

from .conftest import agent_module

Serve = Callable[..., str]

RECORDING_AGENT = """
import threading

release = threading.Event()
started = []

def record(payload, context):
    started.append(payload["query"])
    if payload["query"] == "first":
        release.wait(60)
    return {"answer": payload["query"]}
"""


def test_cancelled_runs_never_start_their_sync_agent(serve: Serve, tmp_path: Path) -> None:
    url = serve("record", "arguments: {worker_threads: 1}\n", module=RECORDING_AGENT)
    agent = agent_module(tmp_path)
    with httpx.Client(base_url=url, timeout=30) as client:
        first = client.post("/runs", json={"query": "first"}).json()["run_id"]
        for _ in range(600):  # the first run holds the only worker thread
            if agent.started:
                break
            threading.Event().wait(0.05)
        assert agent.started == ["first"]
        queued = [
            client.post("/runs", json={"query": f"queued-{i}"}).json()["run_id"] for i in range(10)
        ]
        for run_id in [first, *queued]:
            assert client.delete(f"/runs/{run_id}").status_code == 200
        agent.release.set()
        # Calls run in order: by the time this one has run, every queued one had its turn.
        live = client.post("/invoke", json={"query": "live"})
        assert live.status_code == 200, live.text
        assert agent.started == ["first", "live"]
        for run_id in queued:
            assert client.get(f"/runs/{run_id}").json()["status"] == "CANCELLED"


def test_a_call_whose_task_is_cancelled_while_queued_never_runs() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def work(index: int) -> int:
        ran.append(index)
        if index == 0:
            gate.wait(30)
        return index

    async def main() -> int:
        threads = AgentThreads(1)
        try:
            busy = asyncio.ensure_future(threads.run(work, 0))
            for _ in range(1000):
                await asyncio.sleep(0.005)
                if ran:
                    break
            queued = [asyncio.ensure_future(threads.run(work, i)) for i in range(1, 6)]
            await asyncio.sleep(0)
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
            gate.set()
            assert await busy == 0
            assert await threads.run(work, 99) == 99
            return threads.withdrawn
        finally:
            gate.set()
            threads.shutdown()

    assert asyncio.run(main()) == 5
    assert ran == [0, 99]

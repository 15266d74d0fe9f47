"""The same flows against LangGraph Server itself (`langgraph dev` from a venv with
`langgraph-cli[inmem]`) and against Dockrion's LangGraph API, on one graph, through
`langgraph-sdk`: the event names, their order and the shapes of their data agree. Runs where
that venv exists (`LANGGRAPH_SERVER_VENV`, by default the one the LangGraph benchmark's
setup builds in ~/.cache/dockrion-bench-langgraph/langgraph-server)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langgraph")
langgraph_sdk = pytest.importorskip("langgraph_sdk")
langgraph_api = pytest.importorskip("langgraph_api")  # tools/bench/langgraph_api.py

VENV = Path(
    os.environ.get(
        "LANGGRAPH_SERVER_VENV",
        Path.home() / ".cache" / "dockrion-bench-langgraph" / "langgraph-server",
    )
)
LANGGRAPH = VENV / "bin" / "langgraph"
pytestmark = [
    pytest.mark.skipif(not LANGGRAPH.exists(), reason=f"no LangGraph Server venv at {VENV}"),
    pytest.mark.timeout(300),
]
MODES = ["messages-tuple", "values", "updates"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("langgraph-server-shapes")
    (folder / "bench_graph.py").write_text(langgraph_api.GRAPH)
    (folder / "Dockfile.yaml").write_text(
        langgraph_api.DOCKFILE.replace("allowed: chat", "allowed: all")
    )
    (folder / "langgraph.json").write_text(
        '{"dependencies": ["."], "graphs": {"chat": "./bench_graph.py:graph"}}'
    )
    port = harness.free_port()
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    server = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        theirs = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{theirs}/ok", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "langgraph dev"
            time.sleep(0.2)
        with serve_app(create_app(folder / "Dockfile.yaml")) as ours:
            yield theirs, f"{ours}/lg"
    finally:
        server.terminate()
        server.wait(30)


def shape(value: Any) -> Any:
    """The keys and kinds of a value, not its contents."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def streamed(url: str, **kwargs: Any) -> list[tuple[str, Any]]:
    client = langgraph_sdk.get_sync_client(url=url, api_key=None)
    parts = []
    for part in client.runs.stream(None, "chat", **kwargs):
        data = part.data
        if part.event == "messages" and data[0]["content"] == "":
            continue  # LangGraph Server's empty last chunk
        parts.append((part.event, data))
    return parts


def test_a_streamed_run_has_the_same_events_in_the_same_shapes(servers: tuple[str, str]) -> None:
    theirs, ours = servers
    ask = {"messages": [{"role": "user", "content": "n=3"}]}
    expected = streamed(theirs, input=ask, stream_mode=MODES)
    got = streamed(ours, input=ask, stream_mode=MODES)
    assert [event for event, _ in got] == [event for event, _ in expected]
    for (event, mine), (_, reference) in zip(got, expected, strict=True):
        if event == "messages":
            assert shape(mine[0]) == shape(reference[0])
            assert mine[0]["content"] == reference[0]["content"]
            assert set(mine[1]) <= set(reference[1])  # a subset of LangGraph's metadata
        elif event == "metadata":
            assert set(mine) == set(reference)
        else:
            assert shape(mine) == shape(reference), event
    [last] = [data for event, data in got if event == "values"][-1:]
    [their_last] = [data for event, data in expected if event == "values"][-1:]
    assert [m["content"] for m in last["messages"]] == [
        m["content"] for m in their_last["messages"]
    ]


def test_threads_wait_and_state_have_the_same_shapes(servers: tuple[str, str]) -> None:
    shapes = []
    for url in servers:
        client = langgraph_sdk.get_sync_client(url=url, api_key=None)
        thread = client.threads.create()
        waited = client.runs.wait(
            thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "n=2"}]}
        )
        state = client.threads.get_state(thread["thread_id"])
        run = client.runs.list(thread["thread_id"])[0]
        shapes.append(
            (
                set(thread) - {"interrupts"},  # LangGraph Server names it only once read
                shape(waited),
                sorted(state),
                state["next"],
                run["status"],
                set(run) & {"run_id", "thread_id", "assistant_id", "status", "created_at"},
            )
        )
    for theirs, ours in zip(*shapes, strict=True):
        assert ours == theirs

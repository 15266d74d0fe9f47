"""Entrypoint mode: a factory called once; invoke/ainvoke, and stream/astream chunks as events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from dockrion_events import parse_sse

from .conftest import agent_module, kill_server, start_server, write_project

FACTORIES = """
class Sync:
    def invoke(self, payload):
        return {"sync": payload["query"]}

class Async:
    async def ainvoke(self, payload):
        return {"async": payload["query"]}

class Streams:
    def invoke(self, payload):
        return {"never": "used when streaming"}
    def stream(self, payload):
        yield "Hel"
        yield {"type": "token", "content": "lo"}
        yield {"type": "step", "node": "plan", "duration_ms": 3}
        yield {"type": "progress", "step": "write", "progress": 0.5}
        yield {"type": "custom", "event_type": "citation", "data": {"url": "u"}}
        yield {"type": "result", "data": {"answer": "Hello"}}

class AsyncStreams:
    async def ainvoke(self, payload):
        return {}
    async def astream(self, payload):
        yield {"type": "token", "content": "a"}
        yield {"type": "checkpoint", "name": "c", "data": {"k": 1}}
        yield {"type": "result", "data": {"answer": "a"}}

class NoResult:
    def invoke(self, payload):
        return {}
    def stream(self, payload):
        yield "x"
        yield "y"

class ChunksAdd:
    # like a LangChain Runnable: chunks that merge with +, and both invoke and stream
    def invoke(self, payload):
        return {"from": "invoke", "query": payload["query"]}
    def stream(self, payload):
        from langchain_core.messages import AIMessageChunk
        yield AIMessageChunk(content="Hel")
        yield AIMessageChunk(content="lo")

built = []

def make(cls):
    def factory():
        built.append(cls.__name__)
        return cls()
    return factory

sync = make(Sync)
asynchronous = make(Async)
streams = make(Streams)
async_streams = make(AsyncStreams)
no_result = make(NoResult)
chunks_add = make(ChunksAdd)

def not_a_runner():
    return 42

runner_object = Sync()  # the agent itself: used as it is, not called
not_an_agent = 42

def counted():
    # one line per call, in a file beside this module: visible from another process
    import pathlib
    with open(pathlib.Path(__file__).with_name("factory_calls.txt"), "a") as calls:
        calls.write("called\\n")
    return Sync()
"""


Serve = Callable[..., str]


def serve_entry(serve: Serve, factory: str) -> str:
    return serve(factory, module=FACTORIES, entrypoint=True)


def stream_types(url: str) -> list[dict[str, object]]:
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "q"}, timeout=60).content
    return [json.loads(m.data) for m in parse_sse(raw)]


def test_sync_runner(serve: Serve) -> None:
    url = serve_entry(serve, "sync")
    assert httpx.post(f"{url}/invoke", json={"query": "q"}).json()["output"] == {"sync": "q"}
    # a runner that cannot stream still gives `started` and `complete` with the output
    events = stream_types(url)
    assert [e["type"] for e in events] == ["started", "complete"]
    assert events[-1]["output"] == {"sync": "q"}


def test_an_entrypoint_naming_an_object_serves_it_and_a_non_agent_is_refused(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve_entry(serve, "runner_object")
    assert httpx.post(f"{url}/invoke", json={"query": "q"}).json()["output"] == {"sync": "q"}
    assert "Sync" not in agent_module(tmp_path).built  # no factory was called
    dockfile = write_project(tmp_path, "not_an_agent", module=FACTORIES, entrypoint=True)
    process = subprocess.run(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1
    assert "is a int: neither a factory" in process.stderr


def test_async_runner(serve: Serve) -> None:
    url = serve_entry(serve, "asynchronous")
    assert httpx.post(f"{url}/invoke", json={"query": "q"}).json()["output"] == {"async": "q"}


def test_stream_chunks_become_events(serve: Serve) -> None:
    url = serve_entry(serve, "streams")
    events = stream_types(url)
    assert [e["type"] for e in events] == [
        "started",
        "token",
        "token",
        "step",
        "progress",
        "custom:citation",
        "complete",
    ]
    assert events[3]["node_name"] == "plan"
    assert events[-1]["output"] == {"answer": "Hello"}
    assert [e["sequence"] for e in events] == list(range(7))


def test_async_stream_chunks(serve: Serve) -> None:
    url = serve_entry(serve, "async_streams")
    events = stream_types(url)
    assert [e["type"] for e in events] == ["started", "token", "checkpoint", "complete"]
    assert events[-1]["output"] == {"answer": "a"}


def test_stream_without_result_chunk_outputs_the_accumulated_text(serve: Serve) -> None:
    url = serve_entry(serve, "no_result")
    events = stream_types(url)
    assert [e["type"] for e in events] == ["started", "token", "token", "complete"]
    assert events[-1]["output"] == "xy"


def test_runner_with_invoke_and_stream_uses_invoke_on_invoke(serve: Serve) -> None:
    url = serve_entry(serve, "chunks_add")
    answer = httpx.post(f"{url}/invoke", json={"query": "q"})
    assert answer.status_code == 200
    assert answer.json()["output"] == {"from": "invoke", "query": "q"}
    events = stream_types(url)
    assert [e["type"] for e in events] == ["started", "token", "token", "complete"]
    # message chunks merge the way LangChain merges them, in langchain-core's dict form
    output = events[-1]["output"]
    assert output["content"] == "Hello"
    assert output["type"] == "AIMessageChunk"


def test_factory_result_without_invoke(serve: Serve) -> None:
    url = serve_entry(serve, "not_a_runner")
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 503
    assert "returned int, which has no invoke() or ainvoke() method" in ready.json()["error"]


def test_serve_calls_the_factory_once(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "counted", module=FACTORIES, entrypoint=True)
    process, url = start_server(dockfile)
    try:
        answer = httpx.post(f"{url}/invoke", json={"query": "q"})
        assert answer.json()["output"] == {"sync": "q"}
        assert httpx.post(f"{url}/invoke/stream", json={"query": "q"}).status_code == 200
    finally:
        kill_server(process)
    assert (tmp_path / "factory_calls.txt").read_text() == "called\n"

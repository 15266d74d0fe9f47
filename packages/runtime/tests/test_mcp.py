"""MCP over Streamable HTTP (`expose.mcp`), driven by the `mcp` SDK's own client against a
live server: the agent listed as one tool, a call with progress notifications, a call
cancelled by `notifications/cancelled`, a cut stream resumed by its event id (nothing lost
or repeated, also when the client loses its connection), redaction. Sessions and refusals:
test_mcp_transport.py; the docs' examples: test_mcp_docs.py."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app, write_project

mcp = pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")

import mcp_types  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.message import ClientMessageMetadata  # noqa: E402

from .mcp_client import ACCEPT, WAIT, CuttingRelay, call_request, session, sse_events  # noqa: E402

ALICE, BOB, CAROL = ({"X-API-Key": f"key-{name}"} for name in ("alice", "bob", "carol"))
MODULE = """
import threading, time

release = threading.Event()
stopped = threading.Event()

def tool(payload, context):
    mode = payload.get("mode", "echo")
    if mode == "echo":
        for word in payload["query"].split():
            context.sync_emit_token(word)
        context.sync_emit_progress("echo", 1.0, "all words sent")
        return {"answer": payload["query"]}
    if mode == "hold":  # three tokens, then the rest once the test releases it
        for word in ("one", "two", "three"):
            context.sync_emit_token(word)
        release.wait(60)
        for word in ("four", "five", "six"):
            context.sync_emit_token(word)
        return {"answer": "one two three four five six"}
    if mode == "endless":
        try:
            for i in range(600_000):
                context.sync_emit_token(str(i))
                time.sleep(0.01)
        finally:
            stopped.set()
        return {"answer": "never"}
    raise ValueError("the agent broke")
"""

EXTRA = """
expose:
  host: 127.0.0.1
  mcp: {enabled: true, path: /tools/mcp}
auth:
  mode: api_key
  api_keys: {prefix: team}
"""
REDACTING = """
expose:
  host: 127.0.0.1
  mcp: {enabled: true}
policies:
  safety:
    redact_patterns: ["(?<=password=)[a-z0-9]{8}"]
"""
SCHEMA = (
    "io_schema:\n  input:\n    type: object\n    properties:\n"
    "      query: {type: string}\n      mode: {type: string, enum: [echo, hold, endless, fail]}\n"
    "    required: [query]\n"
    "  output:\n    type: object\n    properties: {answer: {type: string}}\n"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """(base URL, the agent's module) of one live server for the module."""
    folder = tmp_path_factory.mktemp("mcp")
    dockfile = write_project(folder, "tool", EXTRA, MODULE)
    text = dockfile.read_text()
    start = text.index("io_schema:")
    dockfile.write_text(text[:start] + SCHEMA + text[text.index("expose:") :])
    environ = {f"TEAM_API_KEY_{n.upper()}": f"key-{n}" for n in ("alice", "bob", "carol")}
    with serve_app(create_app(dockfile, environ=environ)) as base:
        yield base, sys.modules[f"agent_{folder.name.replace('-', '_')}"]
    for name in [m for m in sys.modules if m.startswith("agent_mcp")]:
        del sys.modules[name]


@pytest.fixture
def url(served: tuple[str, Any]) -> str:
    return served[0] + "/tools/mcp"


def my_runs(base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/runs", params={"limit": 100}, headers=headers, timeout=WAIT)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


# --- the tool ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_agent_is_one_tool_with_the_dockfile_schemas(url: str) -> None:
    async with session(url, ALICE) as client:
        listed = await client.list_tools()
    [tool] = listed.tools
    assert tool.name == "test-agent"
    assert tool.input_schema["properties"]["query"] == {"type": "string"}
    assert tool.input_schema["required"] == ["query"]
    assert tool.output_schema == {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
    }


@pytest.mark.anyio
async def test_a_call_sends_progress_then_text_and_structured_content(url: str) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with session(url, ALICE) as client:
        result = await client.call_tool(
            "test-agent", {"query": "alpha beta gamma"}, progress_callback=on_progress
        )
        quiet = await client.call_tool("test-agent", {"query": "no token"})
    assert result.is_error is False
    assert result.structured_content == {"answer": "alpha beta gamma"}
    [text] = result.content
    assert isinstance(text, mcp_types.TextContent)
    assert json.loads(text.text) == {"answer": "alpha beta gamma"}
    assert [message for _, message in progress] == [
        "alpha",
        "beta",
        "gamma",
        "echo: all words sent",
    ]
    values = [value for value, _ in progress]
    assert values == sorted(set(values))  # each progress greater than the one before
    assert result.meta is not None and "dockrion/run_id" in result.meta
    assert quiet.structured_content == {"answer": "no token"}


@pytest.mark.anyio
async def test_a_failed_run_and_bad_arguments_are_tool_errors(url: str) -> None:
    async with session(url, ALICE) as client:
        failed = await client.call_tool("test-agent", {"query": "x", "mode": "fail"})
        invalid = await client.call_tool("test-agent", {"mode": "echo"})
        with pytest.raises(mcp.MCPError) as unknown:
            await client.call_tool("another-tool", {"query": "x"})
    assert failed.is_error is True
    assert "AGENT_EXECUTION_ERROR" in failed.content[0].text  # type: ignore[union-attr]
    assert invalid.is_error is True
    assert "query" in invalid.content[0].text  # type: ignore[union-attr]
    assert unknown.value.error.code == mcp_types.INVALID_PARAMS


@pytest.mark.anyio
async def test_the_client_probing_for_a_newer_revision_falls_back_to_the_handshake(
    url: str,
) -> None:
    async with (
        httpx2.AsyncClient(headers=ALICE, timeout=WAIT) as http,
        mcp.Client(streamable_http_client(url, http_client=http), mode="auto") as client,
    ):
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("test-agent", {"query": "auto mode"})
    assert result.structured_content == {"answer": "auto mode"}


@pytest.mark.anyio
async def test_redaction_covers_progress_and_results(serve: Any) -> None:
    url = serve("echo", REDACTING) + "/mcp"
    messages: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    async with session(url, {}) as client:
        result = await client.call_tool(
            "test-agent", {"query": "my password=hunter22 ok"}, progress_callback=on_progress
        )
    assert "hunter22" not in json.dumps(result.model_dump(mode="json"))
    assert "hunter22" not in "".join(m or "" for m in messages)
    assert "=[REDACTED]" in "".join(m or "" for m in messages)
    assert result.structured_content == {"answer": "my password=[REDACTED] ok"}


# --- cancelling and resuming -------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelling_a_call_cancels_its_run(served: tuple[str, Any], url: str) -> None:
    base, agent = served
    first = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        first.set()

    async with session(url, CAROL) as client:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await client.call_tool(
                        "test-agent",
                        {"query": "x", "mode": "endless"},
                        progress_callback=on_progress,
                    )

                group.start_soon(call)
                await first.wait()
                group.cancel_scope.cancel()  # the SDK sends notifications/cancelled
        # the agent stops: its run was cancelled, not just the stream closed
        assert await anyio.to_thread.run_sync(agent.stopped.wait, WAIT)
    with anyio.fail_after(WAIT):
        while True:
            runs = my_runs(base, CAROL)
            if runs and runs[0]["status"] == "CANCELLED":
                break
            await anyio.sleep(0.05)
    assert len(runs) == 1


def cut_call(url: str) -> tuple[str, list[dict[str, str]]]:
    """A client that opens a session, calls the tool (mode `hold`), reads the call's
    stream up to the third token and loses its connection: (its session, what it read)."""
    with httpx.Client(headers={**BOB, **ACCEPT}, timeout=WAIT) as raw:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "cut", "version": "1"},
            },
        }
        session_id = raw.post(url, json=init).headers["mcp-session-id"]
        headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
        call = call_request({"query": "x", "mode": "hold"}, token="cut").model_dump(
            by_alias=True, exclude_none=True
        )
        with raw.stream(
            "POST", url, json={"jsonrpc": "2.0", "id": 7, **call}, headers=headers
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            return session_id, sse_events(r.iter_lines(), until=4)  # priming, three tokens


def replay(url: str, session_id: str, last_event_id: str, count: int) -> list[dict[str, str]]:
    """`count` events of a call's stream after `last_event_id`, read with a GET."""
    headers = {**BOB, **ACCEPT, "Mcp-Session-Id": session_id, "Last-Event-ID": last_event_id}
    with httpx.stream("GET", url, headers=headers, timeout=WAIT) as response:
        assert response.status_code == 200
        return sse_events(response.iter_lines(), until=count)


@pytest.mark.anyio
async def test_a_cut_stream_resumes_from_its_last_event_id(
    served: tuple[str, Any], url: str
) -> None:
    agent = served[1]
    agent.release.clear()
    session_id, before = await anyio.to_thread.run_sync(cut_call, url)
    assert before[0]["data"] == ""
    said = [json.loads(e["data"])["params"]["message"] for e in before[1:]]
    assert said == ["one", "two", "three"]
    last_id = before[-1]["id"]
    agent.release.set()  # the run goes on while nobody listens

    # The SDK's client resumes with that id (Last-Event-ID) and gets the rest.
    resumed: list[str] = []

    async def on_token(token: str) -> None:
        resumed.append(token)

    async with session(url, BOB) as client:
        metadata = ClientMessageMetadata(
            resumption_token=last_id, on_resumption_token_update=on_token
        )
        result = await client.send_request(
            call_request({"query": "x", "mode": "hold"}),
            mcp_types.CallToolResult,
            metadata=metadata,
        )
    assert result.structured_content == {"answer": "one two three four five six"}

    # Nothing lost or repeated: what the cut stream had, then what the resumed one sent,
    # is the whole call as its log replays it from the priming event on.
    whole = await anyio.to_thread.run_sync(replay, url, session_id, before[0]["id"], 7)
    assert [e["id"] for e in before[1:]] + resumed == [e["id"] for e in whole]
    messages = [json.loads(e["data"]) for e in whole]
    said = [m["params"]["message"] for m in messages[:-1]]
    assert said == ["one", "two", "three", "four", "five", "six"]
    assert messages[-1]["id"] == 7  # the call's own request id
    assert messages[-1]["result"]["structuredContent"] == result.structured_content


def test_resuming_needs_an_id_of_the_callers_own_call(served: tuple[str, Any], url: str) -> None:
    with httpx.Client(headers=ACCEPT, timeout=WAIT) as raw:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        sid = raw.post(url, json=init, headers=ALICE).headers["mcp-session-id"]
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            **call_request({"query": "a b"}).model_dump(by_alias=True, exclude_none=True),
        }
        with raw.stream("POST", url, json=call, headers={**ALICE, "Mcp-Session-Id": sid}) as r:
            [priming] = sse_events(r.iter_lines(), until=1)
        headers = {"Mcp-Session-Id": sid, "Last-Event-ID": priming["id"]}
        assert raw.get(url, headers={**ALICE, **headers}).status_code == 200
        bob = raw.post(url, json=init, headers=BOB).headers["mcp-session-id"]
        theirs = {**BOB, "Mcp-Session-Id": bob, "Last-Event-ID": priming["id"]}
        assert raw.get(url, headers=theirs).status_code == 404  # Alice's run
        bad = {**ALICE, "Mcp-Session-Id": sid, "Last-Event-ID": "not an id"}
        assert raw.get(url, headers=bad).status_code == 400


@pytest.mark.anyio
async def test_the_sdk_client_resumes_a_lost_connection_by_itself(
    served: tuple[str, Any],
) -> None:
    base, agent = served
    agent.release.clear()
    relay = CuttingRelay(base, after=3)
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async def release_after_the_cut() -> None:
        assert await anyio.to_thread.run_sync(relay.cut.wait, WAIT)
        agent.release.set()  # the run goes on while the client reconnects

    try:
        async with session(relay.url + "/tools/mcp", BOB) as client:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as group:
                    group.start_soon(release_after_the_cut)
                    result = await client.call_tool(
                        "test-agent", {"query": "x", "mode": "hold"}, progress_callback=on_progress
                    )
    finally:
        relay.close()
    assert relay.cut.is_set()
    assert result.structured_content == {"answer": "one two three four five six"}
    assert progress == ["one", "two", "three", "four", "five", "six"]


# --- a LangGraph graph -------------------------------------------------------------------

REACT = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"


@pytest.mark.anyio
async def test_a_langgraph_graph_answers_with_its_tokens_as_progress(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    dockfile = tmp_path / "Dockfile.yaml"
    text = (REACT / "Dockfile.yaml").read_text()
    dockfile.write_text(text.replace("  ag_ui:\n    enabled: true\n", "  mcp: {enabled: true}\n"))
    (tmp_path / "react.py").write_text((REACT / "react.py").read_text())
    tokens: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        tokens.append(message or "")

    question = {"messages": [{"role": "user", "content": "what is the weather in Paris?"}]}
    sys.modules.pop("react", None)
    try:
        with serve_app(create_app(dockfile)) as base:
            async with session(base + "/mcp", {}) as client:
                [tool] = (await client.list_tools()).tools
                result = await client.call_tool(
                    "langgraph-react", question, progress_callback=on_progress
                )
    finally:
        sys.modules.pop("react", None)
    assert tool.input_schema["required"] == ["messages"]
    assert result.is_error is False
    assert result.structured_content is not None
    answer = result.structured_content["messages"][-1]["content"]
    assert answer == "Here is what I found: 18°C and sunny."
    assert answer in "".join(tokens)

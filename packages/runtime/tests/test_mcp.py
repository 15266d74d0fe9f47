"""MCP over Streamable HTTP (`expose.mcp`), driven by the `mcp` SDK's own client against a
live server: the agent listed as one tool, a call with progress notifications, a call
cancelled by `notifications/cancelled`, a cut stream resumed by its event id (nothing lost
or repeated), sessions, redaction and the auth refusals of the HTTP transport."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from dockrion_runtime import create_app
from dockrion_runtime.settings import SettingsError

from .conftest import bound_socket, serve_app, write_project

mcp = pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")

import mcp_types  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.message import ClientMessageMetadata  # noqa: E402

ALICE, BOB, CAROL = ({"X-API-Key": f"key-{name}"} for name in ("alice", "bob", "carol"))
ACCEPT = {"Accept": "application/json, text/event-stream"}
WAIT = 60  # seconds any one wait of these tests may take at most

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


@asynccontextmanager
async def session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    """An initialized MCP session of the SDK's client (the initialize handshake)."""
    async with (
        httpx2.AsyncClient(headers=headers, timeout=WAIT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def call_request(arguments: dict[str, Any], token: str | None = None) -> Any:
    params: dict[str, Any] = {"name": "test-agent", "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return mcp_types.CallToolRequest(method="tools/call", params=params)


def my_runs(base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/runs", params={"limit": 100}, headers=headers, timeout=WAIT)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def sse_events(lines: Iterator[str], until: int) -> list[dict[str, str]]:
    """The next `until` SSE events of data (ids and data), the priming event counted."""
    events: list[dict[str, str]] = []
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "id" in event:
                events.append(event)
                if len(events) == until:
                    return events
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")
    return events


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


class CuttingRelay:
    """A TCP relay on loopback between a client and the server that drops the first
    connection whose answer has carried `after` progress notifications, whole (the
    client's connection lost mid-call); every other connection passes untouched."""

    def __init__(self, upstream: str, after: int) -> None:
        self.address = upstream.removeprefix("http://").split(":")
        self.after = after
        self.cut = threading.Event()
        self.listener = bound_socket()
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                host, port = self.address
                upstream = socket.create_connection((host, int(port)), timeout=WAIT)
                pair = (client, upstream)
                threading.Thread(target=self._pipe, args=(*pair, pair, False), daemon=True).start()
                threading.Thread(
                    target=self._pipe, args=(upstream, client, pair, True), daemon=True
                ).start()

    def _pipe(self, source: Any, target: Any, pair: tuple[Any, Any], watch: bool) -> None:
        sent = b""
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
                if watch and not self.cut.is_set():
                    sent += data
                    progress = b'"notifications/progress"'
                    last = sent.rfind(progress)
                    # the frame whole: its blank line (a chunk's CRLF may follow it)
                    if sent.count(progress) >= self.after and b"\n\n" in sent[last:]:
                        self.cut.set()
                        break
        for connection in pair:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def close(self) -> None:
        self.listener.close()


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


# --- sessions and refusals ---------------------------------------------------------------


def test_sessions_are_their_callers_and_end_with_delete(url: str) -> None:
    with httpx.Client(timeout=WAIT) as raw:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}},
        }
        opened = raw.post(url, json=init, headers={**ALICE, **ACCEPT})
        assert opened.status_code == 200
        assert opened.json()["result"]["protocolVersion"] == "2025-06-18"
        sid = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        mine = raw.post(url, json=listing, headers={**ALICE, **ACCEPT, "Mcp-Session-Id": sid})
        assert mine.json()["result"]["tools"][0]["name"] == "test-agent"
        theirs = raw.post(url, json=listing, headers={**BOB, **ACCEPT, "Mcp-Session-Id": sid})
        assert theirs.status_code == 404  # another caller's session does not exist
        without = raw.post(url, json=listing, headers={**ALICE, **ACCEPT})
        assert without.status_code == 400
        version = {**ALICE, **ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01"}
        assert raw.post(url, json=listing, headers=version).status_code == 400
        assert raw.get(url, headers={**ALICE, "Mcp-Session-Id": sid}).status_code == 405
        assert raw.delete(url, headers={**ALICE, "Mcp-Session-Id": sid}).status_code == 204
        gone = raw.post(url, json=listing, headers={**ALICE, **ACCEPT, "Mcp-Session-Id": sid})
        assert gone.status_code == 404


def test_auth_refusals_are_401_with_www_authenticate(url: str) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        refused = httpx.post(url, json=init, headers={**headers, **ACCEPT}, timeout=WAIT)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["code"] == "AUTH_ERROR"
    bearer = {"Authorization": "Bearer key-alice", **ACCEPT}
    assert httpx.post(url, json=init, headers=bearer, timeout=WAIT).status_code == 200


@pytest.mark.anyio
async def test_the_sdk_client_without_a_key_is_refused(url: str) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        with pytest.raises(Exception) as refused:  # the SDK's own error types
            async with (
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
    assert refused.value is not None


def test_pages_of_other_origins_are_refused(serve: Any) -> None:
    extra = (
        "expose:\n  host: 127.0.0.1\n  mcp: {enabled: true}\n"
        "  cors: {origins: ['https://app.example.com']}\n"
    )
    url = serve("echo", extra) + "/mcp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for origin, status in (
        ("https://app.example.com", 200),
        ("https://evil.example", 403),
        (url.removesuffix("/mcp"), 200),  # the server's own pages
    ):
        answer = httpx.post(url, json=init, headers={**ACCEPT, "Origin": origin}, timeout=WAIT)
        assert answer.status_code == status, origin


def test_a_path_of_another_route_is_refused(tmp_path: Any) -> None:
    extra = "expose:\n  host: 127.0.0.1\n  mcp: {enabled: true, path: /invoke}\n"
    dockfile = write_project(tmp_path, "echo", extra)
    with pytest.raises(SettingsError, match=r"expose\.mcp\.path"):
        create_app(dockfile)


# --- docs/mcp.md --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
DOCS_KEY = "docs-key-0123456789"


def doc_examples() -> list[tuple[str, str]]:
    """(language, code) of each fenced block after a `<!-- mcp-example -->` in docs/mcp.md."""
    lines = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8").splitlines()
    found: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        if line.strip() == "<!-- mcp-example -->":
            language = lines[index + 1].removeprefix("```")
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            found.append((language, "\n".join(lines[index + 2 : end]) + "\n"))
    return found


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The quick-start agent with `expose.mcp` on and an API key: what docs/mcp.md shows."""
    folder = tmp_path_factory.mktemp("mcp-docs")
    example = ROOT / "examples" / "quickstart"
    text = (example / "Dockfile.yaml").read_text()
    text = text.replace("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  mcp: {enabled: true}\n")
    (folder / "Dockfile.yaml").write_text(text + "auth: {mode: api_key}\n")
    (folder / "agent.py").write_text((example / "agent.py").read_text())
    sys.modules.pop("agent", None)
    app = create_app(folder / "Dockfile.yaml", environ={"DOCKRION_API_KEY": DOCS_KEY})
    with serve_app(app) as base:
        yield base
    sys.modules.pop("agent", None)


def test_the_page_has_its_examples() -> None:
    assert [language for language, _ in doc_examples()] == ["json", "json", "python", "console"]


def test_the_client_configurations_point_at_a_working_endpoint(quickstart: str) -> None:
    cursor, claude = (json.loads(code) for _, code in doc_examples()[:2])
    [(name, server)] = cursor["mcpServers"].items()
    assert server["url"] == "http://localhost:8080/mcp"
    headers = {
        header: value.replace("${env:DOCKRION_API_KEY}", DOCS_KEY)
        for header, value in server["headers"].items()
    }
    [(_, bridge)] = claude["mcpServers"].items()
    assert bridge["command"] == "npx" and bridge["args"][:2] == ["mcp-remote", server["url"]]
    flag, header = bridge["args"][2:]
    assert flag == "--header"
    field, _, value = header.partition(": ")
    bearer = {field: value.replace("${DOCKRION_API_KEY}", DOCS_KEY)}

    async def listed(credentials: dict[str, str]) -> list[str]:
        url = server["url"].replace("http://localhost:8080", quickstart)
        async with session(url, credentials) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    for credentials in (headers, bearer):
        assert anyio.run(listed, credentials) == [name]


def test_the_python_example_runs(quickstart: str, monkeypatch: pytest.MonkeyPatch) -> None:
    [(_, code)] = [example for example in doc_examples() if example[0] == "python"]
    code = code.replace("http://localhost:8080", quickstart)
    monkeypatch.setenv("DOCKRION_API_KEY", DOCS_KEY)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # in this process: the SDK is imported already
        exec(compile(code, "docs/mcp.md", "exec"), {"__name__": "__docs__"})
    assert out.getvalue().splitlines() == [
        "tools: ['quickstart']",
        "progress: hello",
        "progress: echo",
        "progress:  from",
        "progress: echo",
        "progress:  MCP",
        "progress: echo",
        "result: {'answer': 'hello from MCP', 'words': 3}",
    ]


def test_the_curl_example_runs(quickstart: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    [(_, code)] = [example for example in doc_examples() if example[0] == "console"]
    commands: list[str] = []
    continued = False
    for line in code.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line.removeprefix("$ "))
            continued = line.endswith("\\")
    script = "\n".join(commands).replace("http://localhost:8080", quickstart)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "DOCKRION_API_KEY": DOCS_KEY},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("data: "))
    assert answer["id"] == 2
    assert answer["result"]["structuredContent"] == {"answer": "hi there", "words": 2}
    assert '"method":"notifications/progress"' in result.stdout


def test_the_endpoint_is_in_the_api_description(served: tuple[str, Any]) -> None:
    document = httpx.get(f"{served[0]}/openapi.json", headers=ALICE, timeout=WAIT).json()
    operations = document["paths"]["/tools/mcp"]
    assert set(operations) == {"post", "get", "delete"}
    assert "401" in operations["post"]["responses"]
    assert "text/event-stream" in operations["post"]["responses"]["200"]["content"]


@pytest.mark.anyio
async def test_an_input_that_is_not_an_object_is_the_tools_input_property(
    tmp_path: Path,
) -> None:
    dockfile = write_project(
        tmp_path, "no_context", "expose: {host: 127.0.0.1, mcp: {enabled: true}}\n"
    )
    text = dockfile.read_text()
    start, end = text.index("io_schema:"), text.index("expose:")
    dockfile.write_text(text[:start] + "io_schema:\n  input: {type: string}\n" + text[end:])
    with serve_app(create_app(dockfile)) as base:
        async with session(base + "/mcp", {}) as client:
            [tool] = (await client.list_tools()).tools
            result = await client.call_tool("test-agent", {"input": "hi"})
            refused = await client.call_tool("test-agent", {"input": 3})
    assert tool.input_schema == {
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
    }
    assert tool.output_schema is None
    assert result.structured_content == {"echo": "hi"}
    assert refused.is_error is True
    for name in [m for m in sys.modules if m.startswith("agent_")]:
        del sys.modules[name]


BAD_MESSAGES: list[Any] = [
    [],
    [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
    "ping",
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
    {"jsonrpc": "2.0", "id": True, "method": "ping"},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": ["x"]}},
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "test-agent", "arguments": [1]},
    },
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "test-agent",
            "arguments": {"query": "x"},
            "_meta": {"progressToken": {"a": 1}},
        },
    },
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "test-agent", "arguments": {"query": "x"}, "_meta": "m"},
    },
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": {"x": 1}}},
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": None},
    {"jsonrpc": "2.0", "id": 1, "result": {}},
    {"jsonrpc": "2.0", "id": 1, "method": "resources/list"},
]


def test_bad_messages_get_an_answer_never_a_server_error(url: str) -> None:
    with httpx.Client(headers={**ALICE, **ACCEPT}, timeout=WAIT) as raw:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": "not an object"}
        opened = raw.post(url, json=init)
        assert opened.status_code == 200
        headers = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        for message in BAD_MESSAGES:
            answer = raw.post(url, json=message, headers=headers)
            assert answer.status_code in (200, 202, 400), (message, answer.text)
            if answer.status_code != 202:
                body = answer.json()
                assert "error" in body, (message, body)
        not_json = raw.post(
            url, content=b"{", headers={**headers, "Content-Type": "application/json"}
        )
        assert not_json.status_code == 400

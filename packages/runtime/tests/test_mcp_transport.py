"""MCP's HTTP transport on a live server (`expose.mcp`): sessions bound to their caller,
protocol versions, the auth refusals (401 with `WWW-Authenticate`), origins, malformed
messages, the endpoint's path and its OpenAPI description."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import create_app
from dockrion_runtime.settings import SettingsError

from .conftest import serve_app, write_project

pytest.importorskip("mcp")

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from .mcp_client import ACCEPT, WAIT, session

httpx2 = pytest.importorskip("httpx2")

ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}
EXTRA = """
expose:
  host: 127.0.0.1
  mcp: {enabled: true, path: /tools/mcp}
auth:
  mode: api_key
  api_keys: {prefix: team}
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mcp-transport")
    dockfile = write_project(folder, "echo", EXTRA)
    environ = {"TEAM_API_KEY_ALICE": "key-alice", "TEAM_API_KEY_BOB": "key-bob"}
    with serve_app(create_app(dockfile, environ=environ)) as base:
        yield base + "/tools/mcp"
    for name in [m for m in sys.modules if m.startswith("agent_mcp")]:
        del sys.modules[name]


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


def test_a_path_of_another_route_is_refused(tmp_path: Path) -> None:
    extra = "expose:\n  host: 127.0.0.1\n  mcp: {enabled: true, path: /invoke}\n"
    dockfile = write_project(tmp_path, "echo", extra)
    with pytest.raises(SettingsError, match=r"expose\.mcp\.path"):
        create_app(dockfile)


def test_the_endpoint_is_in_the_api_description(url: str) -> None:
    base = url.removesuffix("/tools/mcp")
    document = httpx.get(f"{base}/openapi.json", headers=ALICE, timeout=WAIT).json()
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

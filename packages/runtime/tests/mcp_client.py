"""The `mcp` SDK's client as the MCP tests use it: an initialized session, a tool call
request, an SSE reader for raw streams, and a TCP relay that loses a connection mid-call.
Importing it needs the `mcp` package (the tests skip without it)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from .conftest import bound_socket

__all__ = ["ACCEPT", "WAIT", "CuttingRelay", "call_request", "session", "sse_events"]

ACCEPT = {"Accept": "application/json, text/event-stream"}
WAIT = 60  # seconds any one wait of these tests may take at most


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

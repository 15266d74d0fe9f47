"""Memory a client that does not read can pin on the server is bounded: the events a
`/invoke/stream` run gets ahead of its reader (in bytes, `max_backlog_bytes`), and the
pongs a WebSocket peer that pings without reading makes the server hold (closed)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from client import Target
from ws_client import PING, encode_frame, handshake

from dockrion_events import parse_sse

from .conftest import agent_module, kill_server, start_server, write_project

Serve = Callable[..., str]

BIG_TOKENS = """
emitted = 0

def big_tokens(payload, context):
    global emitted
    for _ in range(3000):
        context.sync_emit_token("x" * 2048)
        emitted += 1
    return {"done": True}
"""


def test_a_stream_that_is_not_read_holds_the_agent_back_by_bytes(
    serve: Serve, tmp_path: Path
) -> None:
    """3,000 tokens of 2 KiB (about 12 MiB held as JSON and frames) against a 64 KiB
    backlog: the agent waits for the reader long before its last token, and the reader
    still gets every one of them."""
    extra = "streaming: {connection: {max_backlog_bytes: 65536}}\n"
    url = serve("big_tokens", extra, module=BIG_TOKENS)
    agent = agent_module(tmp_path)
    target = Target.of(url)
    body = b'{"query": "x"}'
    request = (
        f"POST /invoke/stream HTTP/1.1\r\nHost: {target.host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little
    try:
        sock.settimeout(60)
        sock.connect((target.host, target.port))
        sock.sendall(request)
        for _ in range(600):  # the agent has started
            if agent.emitted:
                break
            threading.Event().wait(0.05)
        threading.Event().wait(1.0)  # room to run ahead, were it unbounded
        assert agent.emitted < 3000
        received = bytearray()
        while chunk := sock.recv(1 << 20):
            received += chunk
    finally:
        sock.close()
    body_start = received.index(b"\r\n\r\n") + 4
    events = [message.event for message in parse_sse(bytes(received[body_start:]))]
    assert events.count("token") == 3000 and events[-1] == "complete"


def test_a_websocket_peer_that_pings_and_never_reads_is_closed(tmp_path: Path) -> None:
    extra = "expose: {host: 127.0.0.1, streaming: websocket}\n"
    process, url = start_server(write_project(tmp_path, "echo", extra))
    target = Target.of(url)
    pings = encode_frame(PING, b"p" * 125) * 8000  # about 1 MiB of pings per write
    sent = 0
    closed = False
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with sock:
            sock.settimeout(30)
            sock.connect((target.host, target.port))
            sock.sendall(handshake(target, "/invoke/ws"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            # Never read again: 64 MiB of pings would make as many pongs to hold.
            with contextlib.suppress(TimeoutError):
                while sent < 64 * (1 << 20):
                    try:
                        sock.sendall(pings)
                    except (ConnectionResetError, BrokenPipeError):
                        closed = True
                        break
                    sent += len(pings)
    finally:
        kill_server(process)
    assert closed, f"still open after {sent} bytes of pings"

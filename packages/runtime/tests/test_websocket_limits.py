"""The WebSocket limits of `expose.limits` under `dockrion-runtime serve`: the largest
client message (1009 past it) and the protocol pings (a peer that never answers loses its
socket with 1011), and whether a client's offer of permessage-deflate is accepted."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from client import Target
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from ws_client import TEXT, FrameParser, WsResult, encode_frame, handshake

from .conftest import kill_server, start_server, write_project
from .test_websocket import read_all, ws_url


def limits(**values: int | str) -> str:
    fields = ", ".join(f"{name}: {value}" for name, value in values.items())
    return f"expose: {{host: 127.0.0.1, streaming: websocket, limits: {{{fields}}}}}\n"


def test_a_message_over_websocket_max_message_bytes_is_closed_1009(tmp_path: Path) -> None:
    # under arguments.max_body_bytes (1 MiB): only the WebSocket limit can refuse it
    extra = limits(websocket_max_message_bytes=2048)
    process, url = start_server(write_project(tmp_path, "echo", extra))
    try:
        with connect(ws_url(url, "/invoke/ws")) as small:
            small.send(json.dumps({"query": "x" * 1000}))
            assert read_all(small)[1] == 1000
        with connect(ws_url(url, "/invoke/ws")) as large:
            large.send(json.dumps({"query": "x" * 4000}))
            try:
                while True:
                    large.recv(timeout=60)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1009
    finally:
        kill_server(process)


def test_silent_peers_are_pinged_every_interval_and_dropped_after_the_timeout(
    tmp_path: Path,
) -> None:
    """A raw client that never answers pings: the first ping comes after about a second
    (the default is 20 s), and the socket is closed 1011 about a second later (20 s)."""
    extra = limits(websocket_ping_interval=1, websocket_ping_timeout=1)
    process, url = start_server(write_project(tmp_path, "wait_for_release", extra))
    target = Target.of(url)
    result = WsResult()
    parser = FrameParser(result)
    pings = 0
    try:
        with socket.create_connection((target.host, target.port), timeout=30) as sock:
            sock.sendall(handshake(target, "/invoke/ws"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            sock.sendall(encode_frame(TEXT, json.dumps({"query": "x"}).encode()))
            data = head.split(b"\r\n\r\n", 1)[1]
            deadline = time.monotonic() + 15  # well under the 20 s default interval
            closed = parser.feed(data, 0.0) if data else False
            while not closed and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                closed = parser.feed(chunk, 0.0)
                pings += len(parser.pongs)
                parser.pongs.clear()  # never answered
    finally:
        kill_server(process)
    assert result.tokens == 1  # the session was open and streaming
    assert pings >= 1
    assert result.close_code == 1011


def test_websocket_compression_decides_whether_permessage_deflate_is_accepted(
    tmp_path: Path,
) -> None:
    """The `websockets` client offers permessage-deflate, as browsers do: accepted by
    default, declined with `websocket_compression: false`, and the stream is the same."""
    negotiated = {}
    for setting in ("true", "false"):
        folder = tmp_path / setting
        folder.mkdir()
        process, url = start_server(
            write_project(folder, "echo", limits(websocket_compression=setting))
        )
        try:
            with connect(ws_url(url, "/invoke/ws")) as ws:
                assert ws.response is not None
                negotiated[setting] = ws.response.headers.get("Sec-WebSocket-Extensions")
                ws.send(json.dumps({"query": "same either way"}))
                messages, code, _ = read_all(ws)
                assert code == 1000
                assert [m["type"] for m in messages][-1] == "complete"
        finally:
            kill_server(process)
    assert negotiated["true"] is not None and "permessage-deflate" in negotiated["true"]
    assert negotiated["false"] is None

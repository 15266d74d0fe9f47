"""WebSocket clients other than the `websockets` library: Node's built-in `WebSocket`
(Pattern A over the browser's subprotocol auth, Pattern B resume), a client that
reconnects with a `Last-Event-ID` header as it would on SSE; and what `serve`'s own
WebSocket protocol writes, with and without compression."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from dockrion_runtime import create_app
from dockrion_runtime.serve import server
from dockrion_runtime.serve.options import ServerOptions
from dockrion_schema import ServerLimits

from .conftest import kill_server, serve_address, start_server, write_project
from .test_websocket import AUTH, KEYS, WS, Serve, read_all, start_run, ws_url

# Reads its arguments from argv: the socket URL, the first message ("" sends none), the
# key to send as a subprotocol ("" for none). Prints one JSON report once the socket closes
# (or fails).
NODE_CLIENT = r"""
const [url, first, key] = process.argv.slice(2);
const protocols = ["dockrion"];
if (key) {
  const token = Buffer.from(key).toString("base64url");
  protocols.push("dockrion.bearer." + token);
}
const socket = new WebSocket(url, protocols);
const messages = [];
socket.onopen = () => { if (first) socket.send(first); };
socket.onmessage = (event) => messages.push(JSON.parse(event.data));
let reported = false;
const report = (code, reason) => {
  if (reported) return;
  reported = true;
  console.log(JSON.stringify({messages, code, reason, protocol: socket.protocol}));
};
socket.onclose = (event) => report(event.code, event.reason);
// Node 20 reports a refused handshake with `error` only (no `close`): 1006, as browsers.
socket.onerror = () => setTimeout(() => report(1006, ""), 100);
"""


@cache
def node_command() -> list[str] | None:
    """How to run Node with its built-in WebSocket: plain from Node 22, behind
    `--experimental-websocket` on Node 20 and 21; None when this Node has neither."""
    node = shutil.which("node")
    if node is None:
        return None
    for flags in ([], ["--experimental-websocket"]):
        probe = subprocess.run(
            [node, *flags, "-e", "process.stdout.write(typeof WebSocket)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0 and probe.stdout == "function":
            return [node, *flags]
    return None


needs_node = pytest.mark.skipif(
    node_command() is None, reason="Node.js with a built-in WebSocket (20+) is not installed"
)


def node_session(tmp_path: Path, url: str, first: str = "", key: str = "") -> dict[str, Any]:
    command = node_command()
    assert command is not None
    script = tmp_path / "client.mjs"
    script.write_text(NODE_CLIENT)
    result = subprocess.run(
        [*command, str(script), url, first, key], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@needs_node
def test_node_pattern_a_tokens_in_order_then_close_1000(serve: Serve, tmp_path: Path) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    report = node_session(
        tmp_path,
        ws_url(url, "/invoke/ws"),
        json.dumps({"query": "one two three"}),
        key="alice-key-1",
    )
    assert report["code"] == 1000 and report["protocol"] == "dockrion"
    messages = report["messages"]
    assert [m["content"] for m in messages if m["type"] == "token"] == ["one", "two", "three"]
    assert [m["sequence"] for m in messages] == list(range(len(messages)))
    assert messages[0]["type"] == "started" and messages[-1]["type"] == "complete"
    # a wrong key never gets a session: the handshake is refused, Node reports 1006
    refused = node_session(tmp_path, ws_url(url, "/invoke/ws"), "{}", key="wrong")
    assert refused["code"] == 1006 and refused["messages"] == []


@needs_node
def test_node_pattern_b_replays_and_resumes(serve: Serve, tmp_path: Path) -> None:
    url = serve("echo", WS)
    run_id = start_run(url, {"query": "a b c"})
    whole = node_session(tmp_path, ws_url(url, f"/runs/{run_id}/ws"))
    assert whole["code"] == 1000
    everything = whole["messages"]
    assert everything[-1]["type"] == "complete"
    assert [m["sequence"] for m in everything] == list(range(len(everything)))
    resumed = node_session(tmp_path, ws_url(url, f"/runs/{run_id}/ws?last_event_id=2"))
    assert resumed["code"] == 1000 and resumed["messages"] == everything[3:]
    inclusive = node_session(tmp_path, ws_url(url, f"/runs/{run_id}/ws?from_sequence=2"))
    assert inclusive["messages"] == everything[2:]


# --- Last-Event-ID on the upgrade request ---------------------------------------------------


def test_last_event_id_header_resumes_like_the_query(serve: Serve) -> None:
    url = serve("echo", WS)
    run_id = start_run(url, {"query": "a b c"})
    with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
        everything, _, _ = read_all(socket)
    headers = {"Last-Event-ID": "3"}
    with connect(ws_url(url, f"/runs/{run_id}/ws"), additional_headers=headers) as socket:
        resumed, code, _ = read_all(socket)
    assert code == 1000 and resumed == everything[4:]
    # the header wins over the query cursors: a client reconnects with its first URL
    stale = ws_url(url, f"/runs/{run_id}/ws?from_sequence=0&last_event_id=0")
    with connect(stale, additional_headers={"Last-Event-ID": "5"}) as socket:
        fresh, _, _ = read_all(socket)
    assert fresh == everything[6:]
    # checked like the SSE header; the same refusal as over HTTP
    expected = httpx.get(
        f"{url}/runs/{run_id}/events", headers={"Last-Event-ID": "x"}, timeout=30
    ).json()
    bad = {"Last-Event-ID": "x"}
    with connect(ws_url(url, f"/runs/{run_id}/ws"), additional_headers=bad) as socket:
        refusal, code, reason = read_all(socket)
    assert (code, reason) == (4400, "VALIDATION_ERROR")
    assert refusal == [expected]


# --- serve's WebSocket protocol: batches in one write ---------------------------------------


def test_serve_sends_batches_intact_with_and_without_compression(tmp_path: Path) -> None:
    """Under `serve` a batch of events leaves in one write, framed by the runtime without
    compression and by the websockets protocol with permessage-deflate: both give exactly
    the SSE data of the run, messages of every length encoding included."""
    process, url = start_server(
        write_project(tmp_path, "echo", "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n")
    )
    try:
        words = ["a", "b" * 300, "c" * 70_000, "d"]  # 7-bit, 16-bit and 64-bit lengths
        run_id = start_run(url, {"query": " ".join(words)})
        sse = sse_lines(url, f"/runs/{run_id}/events")
        for compression in ("deflate", None):
            with connect(
                ws_url(url, f"/runs/{run_id}/ws"), compression=compression, max_size=None
            ) as socket:
                assert ("permessage-deflate" in str(socket.response.headers)) == bool(compression)
                raw: list[str] = []
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        message = socket.recv(timeout=60)
                        assert isinstance(message, str)
                        raw.append(message)
            assert raw == sse
        assert json.loads(sse[-1])["type"] == "complete"
        assert [json.loads(m)["content"] for m in sse if '"type":"token"' in m] == words
    finally:
        kill_server(process)


def sse_lines(url: str, path: str) -> list[str]:
    with httpx.stream("GET", url + path, timeout=60) as response:
        return [
            line.removeprefix("data: ")
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]


def test_a_refused_handshake_is_not_logged_as_an_error(tmp_path: Path) -> None:
    """serve's WebSocket protocol: a 401 answer to the handshake is a normal outcome, not
    "ASGI callable returned without completing handshake" at ERROR."""
    app = create_app(write_project(tmp_path, "echo", AUTH), environ=KEYS)
    settings = server.uvicorn_options(ServerOptions.from_limits(ServerLimits()))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(handler)
    try:
        with serve_address(app, log_config=None, **settings) as (host, port):
            for _ in range(3):
                with pytest.raises(InvalidStatus) as refused:
                    connect(f"ws://{host}:{port}/invoke/ws", additional_headers={"X-API-Key": "no"})
                assert refused.value.response.status_code == 401
            key = {"X-API-Key": "alice-key-1"}
            with connect(f"ws://{host}:{port}/invoke/ws", additional_headers=key) as socket:
                socket.send(json.dumps({"query": "hi"}))
                assert read_all(socket)[1] == 1000  # the session after the refusals finished
    finally:
        uvicorn_log.removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []

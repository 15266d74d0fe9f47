"""WebSocket endpoints over a real uvicorn server on loopback, with the `websockets` client:
`WS /invoke/ws` (Pattern A) and `WS /runs/{run_id}/ws` (Pattern B), auth before the
handshake (headers, and the browser's subprotocol token), refusals and close codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from dockrion_runtime import create_app
from dockrion_runtime.serve.options import ServerOptions

from .browser_page import CHROMIUM, run_page
from .conftest import agent_module, kill_server, serve_guarded, start_server, write_project

Serve = Callable[..., str]

WS = "expose: {host: 127.0.0.1, streaming: websocket}\n"
KEYS = {"TEAM_API_KEY_ALICE": "alice-key-1", "TEAM_API_KEY_BOB": "bob-key-2"}
AUTH = WS + "auth: {mode: api_key, api_keys: {prefix: team}}\n"


def ws_url(url: str, path: str) -> str:
    return "ws" + url.removeprefix("http") + path


def read_all(socket: ClientConnection) -> tuple[list[dict[str, Any]], int | None, str]:
    """Every message until the server closes: (messages, close code, close reason)."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            raw = socket.recv(timeout=60)
            assert isinstance(raw, str)  # text messages only
            messages.append(json.loads(raw))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server must close with a code"
        return messages, closed.rcvd.code, closed.rcvd.reason


def recv_until(socket: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1].get("type") != kind:
        seen.append(json.loads(socket.recv(timeout=60)))
    return seen


def sse_data(url: str, path: str, headers: dict[str, str] | None = None) -> list[str]:
    """The `data:` lines of a whole SSE stream, heartbeats left out."""
    lines: list[str] = []
    with httpx.stream("GET", url + path, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and '"type":"heartbeat"' not in line:
                lines.append(line.removeprefix("data: "))
    return lines


def bearer_subprotocol(token: str) -> str:
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return f"dockrion.bearer.{encoded}"


# --- Pattern A ------------------------------------------------------------------------------


def test_invoke_ws_sends_each_event_as_its_json_then_closes_1000(serve: Serve) -> None:
    url = serve("echo", WS)
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "one two three"}))
        messages, code, _ = read_all(socket)
    assert code == 1000
    types = [m["type"] for m in messages]
    assert types[0] == "started" and types[-1] == "complete"
    assert types.count("complete") == 1
    assert [m["content"] for m in messages if m["type"] == "token"] == ["one", "two", "three"]
    assert [m["sequence"] for m in messages] == list(range(len(messages)))
    assert len({m["run_id"] for m in messages}) == 1
    assert messages[-1]["output"] == {"answer": "one two three"}


def test_invoke_ws_messages_are_the_sse_data_of_the_same_run(serve: Serve) -> None:
    url = serve("echo", "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n")
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "a b"}))
        messages, code, _ = read_all(socket)
    assert code == 1000
    sse = [json.loads(line) for line in sse_data_post(url, {"query": "a b"})]
    # Same fields in the same order; ids, run ids and times differ between two runs.
    varying = {"id", "run_id", "timestamp", "latency_seconds", "metadata"}
    strip = [{k: v for k, v in m.items() if k not in varying} for m in messages]
    assert strip == [{k: v for k, v in m.items() if k not in varying} for m in sse]
    assert [list(m) for m in messages] == [list(m) for m in sse]


def sse_data_post(url: str, body: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    with httpx.stream("POST", f"{url}/invoke/stream", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line.removeprefix("data: "))
    return lines


def test_cancel_message_stops_the_agent_then_cancelled_and_1000(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve("endless", WS)
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "x"}))
        recv_until(socket, "token")
        socket.send(json.dumps({"action": "cancel"}))
        messages, code, _ = read_all(socket)
    assert code == 1000
    assert messages[-1]["type"] == "cancelled"
    assert [m["type"] for m in messages].count("cancelled") == 1
    assert agent_module(tmp_path).stopped.wait(30)  # the agent's `finally` ran


def test_closing_the_socket_cancels_the_run(serve: Serve, tmp_path: Path) -> None:
    url = serve("endless", WS)
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "x"}))
        recv_until(socket, "token")
    assert agent_module(tmp_path).stopped.wait(30)


@pytest.mark.parametrize(
    ("message", "loc"),
    [
        ({"nope": 1}, ["body", "query"]),
        ({"query": 5}, ["body", "query"]),
        ("not json {", ["body"]),
        ("", ["body"]),
    ],
)
def test_invalid_input_is_the_400_body_then_close_4400(
    serve: Serve, message: Any, loc: list[str]
) -> None:
    url = serve("echo", WS)
    expected = httpx.post(
        f"{url}/invoke", content=message if isinstance(message, str) else json.dumps(message)
    ).json()
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(message if isinstance(message, str) else json.dumps(message))
        messages, code, reason = read_all(socket)
    assert code == 4400 and reason == "VALIDATION_ERROR"
    assert messages == [expected]
    assert "type" not in messages[0] and messages[0]["success"] is False
    assert messages[0]["details"][0]["loc"] == loc


def test_oversized_input_is_413_then_close_4413(serve: Serve) -> None:
    url = serve("echo", WS + "arguments: {max_body_bytes: 1024}\n")
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "x" * 2000}))
        messages, code, reason = read_all(socket)
    assert (code, reason) == (4413, "PAYLOAD_TOO_LARGE")
    assert messages[0]["code"] == "PAYLOAD_TOO_LARGE"


def test_unknown_client_messages_are_answered_and_the_run_goes_on(serve: Serve) -> None:
    url = serve("slow_tokens", WS)
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "x", "count": 3}))
        recv_until(socket, "started")
        socket.send(json.dumps({"action": "dance"}))
        messages, code, _ = read_all(socket)
    assert code == 1000
    refusals = [m for m in messages if "type" not in m]
    assert refusals[0]["code"] == "VALIDATION_ERROR"
    assert messages[-1]["type"] == "complete"


# --- what is served ------------------------------------------------------------------------


def test_sse_dockfiles_serve_no_websocket_and_websocket_ones_no_invoke_stream(
    serve: Serve,
) -> None:
    sse = serve("echo")
    with pytest.raises(InvalidStatus):
        connect(ws_url(sse, "/invoke/ws")).close()
    ws = serve("echo", WS)
    assert httpx.post(f"{ws}/invoke/stream", json={"query": "x"}).status_code == 404
    welcome = httpx.get(ws).text
    assert "WS /invoke/ws" in welcome and "WS /runs/{run_id}/ws" in welcome
    document = httpx.get(f"{ws}/openapi.json").json()
    assert "/invoke/ws" not in document["paths"]
    assert "/invoke/ws" in document["info"]["description"]
    plain = httpx.get(f"{ws}/invoke/ws")
    assert plain.status_code == 426 and plain.json()["code"] == "UPGRADE_REQUIRED"


def test_metrics_count_sessions_and_events(serve: Serve) -> None:
    url = serve("echo", WS)
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps({"query": "a b"}))
        messages, _, _ = read_all(socket)
    text = httpx.get(f"{url}/metrics").text
    assert (
        'dockrion_websocket_sessions_total{agent="test-agent",code="1000",endpoint="/invoke/ws"} 1.0'
        in text
    )
    assert f'dockrion_websocket_events_sent_total{{agent="test-agent"}} {len(messages)}.0' in text
    assert 'dockrion_active_websockets{agent="test-agent"} 0.0' in text


# --- auth ------------------------------------------------------------------------------------


def test_auth_is_checked_before_the_handshake_completes(serve: Serve) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    for headers in ({}, {"X-API-Key": "wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(url, "/invoke/ws"), additional_headers=headers)
        response = refused.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["detail"]["code"] == "AUTH_ERROR"
    assert httpx.get(f"{url}/invoke/ws").status_code == 401
    with connect(ws_url(url, "/invoke/ws"), additional_headers={"X-API-Key": "alice-key-1"}) as s:
        s.send(json.dumps({"query": "hi"}))
        assert read_all(s)[1] == 1000


def test_browsers_send_the_key_as_a_subprotocol_and_get_dockrion_back(serve: Serve) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    offered = ["dockrion", bearer_subprotocol("alice-key-1")]
    with connect(ws_url(url, "/invoke/ws"), subprotocols=offered) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "dockrion"  # never the token
        socket.send(json.dumps({"query": "hi"}))
        messages, code, _ = read_all(socket)
    assert code == 1000 and messages[-1]["type"] == "complete"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url(url, "/invoke/ws"),
            subprotocols=["dockrion", bearer_subprotocol("wrong")],  # type: ignore[list-item]
        )
    assert refused.value.response.status_code == 401


def test_a_foreign_origin_is_refused_when_cors_names_origins(serve: Serve) -> None:
    url = serve(
        "echo",
        "expose: {host: 127.0.0.1, streaming: websocket, "
        "cors: {origins: ['https://app.example']}}\n",
    )
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(url, "/invoke/ws"), origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    with connect(ws_url(url, "/invoke/ws"), origin="https://app.example") as socket:  # type: ignore[arg-type]
        socket.send(json.dumps({"query": "hi"}))
        assert read_all(socket)[1] == 1000


# --- Pattern B -----------------------------------------------------------------------------


def start_run(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    response = httpx.post(f"{url}/runs", json=body, headers=headers)
    assert response.status_code == 202
    run_id: str = response.json()["run_id"]
    return run_id


def test_run_ws_replays_then_follows_live_identically_to_sse(serve: Serve) -> None:
    url = serve("slow_tokens", WS)
    run_id = start_run(url, {"query": "x", "count": 8})
    with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
        raw: list[str] = []
        try:
            while True:
                message = socket.recv(timeout=60)
                assert isinstance(message, str)
                if '"type":"heartbeat"' not in message:
                    raw.append(message)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1000
    events = [json.loads(m) for m in raw]
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("complete") == 1
    assert events[-1]["type"] == "complete"
    # an SSE subscriber of the same run sees exactly the same messages
    assert sse_data(url, f"/runs/{run_id}/events") == raw


def test_run_ws_resumes_from_either_cursor(serve: Serve) -> None:
    url = serve("echo", WS)
    run_id = start_run(url, {"query": "a b c"})
    with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
        everything, _, _ = read_all(socket)
    with connect(ws_url(url, f"/runs/{run_id}/ws?from_sequence=3")) as socket:
        inclusive, code, _ = read_all(socket)
    with connect(ws_url(url, f"/runs/{run_id}/ws?last_event_id=3")) as socket:
        exclusive, _, _ = read_all(socket)
    assert code == 1000
    assert inclusive == everything[3:]
    assert exclusive == everything[4:]
    with connect(ws_url(url, f"/runs/{run_id}/ws?last_event_id=x")) as socket:
        refusal, code, _ = read_all(socket)
    assert code == 4400 and refusal[0]["code"] == "VALIDATION_ERROR"


def test_run_ws_owner_cancels_another_caller_is_refused(serve: Serve, tmp_path: Path) -> None:
    url = serve("endless", AUTH, environ=KEYS)
    alice, bob = {"X-API-Key": "alice-key-1"}, {"X-API-Key": "bob-key-2"}
    run_id = start_run(url, {"query": "x"}, alice)
    with connect(ws_url(url, f"/runs/{run_id}/ws"), additional_headers=bob) as socket:
        refusal, code, reason = read_all(socket)
    assert (code, reason) == (4404, "NOT_FOUND")
    assert refusal[0]["code"] == "NOT_FOUND"
    with connect(ws_url(url, f"/runs/{run_id}/ws"), additional_headers=alice) as socket:
        recv_until(socket, "token")
        socket.send(json.dumps({"action": "cancel"}))
        messages, code, _ = read_all(socket)
    assert code == 1000 and messages[-1]["type"] == "cancelled"
    assert agent_module(tmp_path).stopped.wait(30)
    assert httpx.get(f"{url}/runs/{run_id}", headers=alice).json()["status"] == "CANCELLED"


def test_run_ws_subscriber_limit_and_timeout(serve: Serve, tmp_path: Path) -> None:
    url = serve(
        "wait_for_release",
        WS + "streaming: {connection: {max_subscribers_per_run: 1}}\n",
    )
    run_id = start_run(url, {"query": "x"})
    try:
        with connect(ws_url(url, f"/runs/{run_id}/ws?timeout=1")) as first:
            recv_until(first, "token")
            with connect(ws_url(url, f"/runs/{run_id}/ws")) as second:
                refusal, code, _ = read_all(second)
            assert code == 4429 and refusal[0]["code"] == "TOO_MANY_SUBSCRIBERS"
            _, code, reason = read_all(first)  # the subscription ends, the run goes on
            assert (code, reason) == (4001, "subscription timeout")
        assert httpx.get(f"{url}/runs/{run_id}").json()["status"] == "RUNNING"
    finally:
        agent_module(tmp_path).release.set()
    with connect(ws_url(url, f"/runs/{run_id}/ws?last_event_id=1")) as socket:
        messages, code, _ = read_all(socket)
    assert code == 1000 and messages[-1]["type"] == "complete"


def test_run_ws_of_an_unknown_run_is_4404(serve: Serve) -> None:
    url = serve("echo", WS)
    with connect(ws_url(url, "/runs/no-such-run/ws")) as socket:
        refusal, code, _ = read_all(socket)
    assert code == 4404 and refusal[0]["code"] == "NOT_FOUND"


def test_heartbeat_events_on_idle_sockets(serve: Serve, tmp_path: Path) -> None:
    url = serve("wait_for_release", WS + "streaming: {events: {heartbeat_interval: 1}}\n")
    run_id = start_run(url, {"query": "x"})
    try:
        with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
            seen = recv_until(socket, "heartbeat")
    finally:
        agent_module(tmp_path).release.set()
    assert seen[-1]["run_id"] == run_id
    assert "id" in seen[-1] or "sequence" in seen[-1]


# --- the server `serve` starts ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["GuardedH11Protocol", "GuardedHttpToolsProtocol"])
def test_sessions_outlive_the_request_head_deadline_of_both_guarded_protocols(
    tmp_path: Path, protocol: str
) -> None:
    options = ServerOptions(
        header_timeout=1.0, keep_alive_timeout=5.0, max_connections=100, max_header_bytes=4096
    )
    app = create_app(write_project(tmp_path, "slow_tokens", WS))
    # 25 tokens 0.1 s apart: the session lasts past the one-second head deadline
    with (
        serve_guarded(protocol, app, options) as (host, port),
        connect(f"ws://{host}:{port}/invoke/ws") as socket,
    ):
        socket.send(json.dumps({"query": "x", "count": 25}))
        messages, code, _ = read_all(socket)
    assert code == 1000
    assert [m["type"] for m in messages].count("token") == 25


def test_serve_answers_websockets(tmp_path: Path) -> None:
    """`dockrion-runtime serve` (its own process, its guarded protocol) upgrades."""
    process, url = start_server(write_project(tmp_path, "echo", WS))
    try:
        with connect(ws_url(url, "/invoke/ws")) as socket:
            socket.send(json.dumps({"query": "a b"}))
            messages, code, _ = read_all(socket)
        assert code == 1000 and messages[-1]["type"] == "complete"
    finally:
        kill_server(process)


def test_run_ws_on_redis_replays_and_resumes(serve: Serve, redis_server: Any) -> None:
    url = serve(
        "slow_tokens",
        WS + f"streaming: {{backend: redis, redis: {{url: '{redis_server.url}'}}}}\n",
    )
    run_id = start_run(url, {"query": "x", "count": 5})
    with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
        everything, code, _ = read_all(socket)
    everything = [m for m in everything if m["type"] != "heartbeat"]
    assert code == 1000 and everything[-1]["type"] == "complete"
    assert [m["sequence"] for m in everything] == list(range(len(everything)))
    with connect(ws_url(url, f"/runs/{run_id}/ws?last_event_id=2")) as socket:
        resumed, _, _ = read_all(socket)
    assert resumed == everything[3:]


# --- a real browser --------------------------------------------------------------------------


PAGE = """<!doctype html><meta charset="utf-8"><title>ws</title>
<script>
// Browsers cannot set headers on a WebSocket: the key rides as a subprotocol.
const key = "alice-key-1";
const token = btoa(key).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
const socket = new WebSocket("WS_URL", ["dockrion", "dockrion.bearer." + token]);
const seen = [];
socket.onopen = () => socket.send(JSON.stringify({query: "one two three"}));
socket.onmessage = (e) => seen.push(JSON.parse(e.data));
socket.onclose = (e) => fetch("/report", {
  method: "POST", body: JSON.stringify({seen, code: e.code, protocol: socket.protocol}),
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_browser_websocket_with_the_subprotocol_token(serve: Serve, tmp_path: Path) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    page = PAGE.replace("WS_URL", ws_url(url, "/invoke/ws"))
    report = run_page(page, tmp_path / "profile")
    assert report["code"] == 1000 and report["protocol"] == "dockrion"
    tokens = [m["content"] for m in report["seen"] if m["type"] == "token"]
    assert tokens == ["one", "two", "three"]
    assert report["seen"][-1]["type"] == "complete"

"""The probe listener (`expose.probe_port`, `serve --probe-port`): `/health` and `/ready`
on a port of their own, with true readiness (the backend answering, not shutting down),
started and stopped with the server, refusing everything else with a 4xx."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from dockrion_runtime import create_app
from dockrion_runtime.cli import main
from dockrion_runtime.serve.probes import ProbeListener

from .conftest import serve_app, start_server, write_project

Serve = Callable[..., str]


def raw(port: int, request: bytes) -> bytes:
    """Send `request` as is on a fresh connection; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def answer_with(url: str, status: int, seconds: float = 30) -> httpx.Response:
    """The first answer from `url` with `status`, asking until one comes."""
    answers: list[httpx.Response] = []

    def answered() -> bool:
        with contextlib.suppress(httpx.TransportError):
            answers.append(httpx.get(url, timeout=5))
        return bool(answers) and answers[-1].status_code == status

    wait_for(answered, seconds)
    return answers[-1]


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


def test_the_probe_port_answers_health_and_ready_like_the_api(serve: Serve) -> None:
    probe_port = harness.free_port()
    url = serve("echo", f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n")
    probes = f"http://127.0.0.1:{probe_port}"
    health = httpx.get(f"{probes}/health")
    assert health.status_code == 200
    assert health.headers["content-type"] == "application/json"
    api_health = httpx.get(f"{url}/health").json()
    assert health.json().keys() == api_health.keys()
    assert {k: v for k, v in health.json().items() if k != "timestamp"} == {
        k: v for k, v in api_health.items() if k != "timestamp"
    }
    ready = httpx.get(f"{probes}/ready?verbose=1")
    assert ready.status_code == 200
    assert ready.json() == {"success": True, "status": "ready", "agent": "test-agent"}
    head = httpx.head(f"{probes}/ready")
    assert (head.status_code, head.content) == (200, b"")


def test_the_probe_port_serves_only_its_two_paths(serve: Serve) -> None:
    probe_port = harness.free_port()
    serve("echo", f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n")
    probes = f"http://127.0.0.1:{probe_port}"
    for path in ("/", "/invoke", "/metrics", "/health/", "/readyz"):
        response = httpx.get(f"{probes}{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"
    posted = httpx.post(f"{probes}/invoke", json={"query": "x"})
    assert posted.status_code == 404
    refused = httpx.post(f"{probes}/ready", json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n",  # the head never ends: the client gives up
    ],
)
def test_a_bad_request_on_the_probe_port_gets_a_json_400(
    serve: Serve, request_bytes: bytes
) -> None:
    probe_port = harness.free_port()
    serve("echo", f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n")
    with socket.create_connection(("127.0.0.1", probe_port), timeout=30) as conn:
        conn.sendall(request_bytes)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"code": "BAD_REQUEST"' in answer
    # and the listener goes on answering
    assert raw(probe_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_the_listener_starts_and_stops_with_the_server(tmp_path: Path) -> None:
    probe_port = harness.free_port()
    dockfile = write_project(
        tmp_path, "echo", f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n"
    )
    with serve_app(create_app(dockfile)):
        assert status_of(f"http://127.0.0.1:{probe_port}/ready") == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", probe_port), timeout=5).close()
    # the port was given back: a second server takes it again
    with serve_app(create_app(dockfile)):
        assert status_of(f"http://127.0.0.1:{probe_port}/health") == 200


def test_not_ready_on_the_probe_port_while_redis_is_stopped(
    tmp_path: Path, make_redis_server: Callable[..., Any]
) -> None:
    redis = make_redis_server()
    redis.start()
    probe_port = harness.free_port()
    dockfile = write_project(
        tmp_path,
        "echo",
        f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n"
        f"streaming:\n  backend: redis\n  redis: {{url: '{redis.url}'}}\n",
    )
    ready = f"http://127.0.0.1:{probe_port}/ready"
    with serve_app(create_app(dockfile)):
        assert status_of(ready) == 200
        redis.stop()
        body = answer_with(ready, 503).json()
        assert body["status"] == "not_ready"
        assert "redis events backend does not answer" in body["error"]
        assert status_of(f"http://127.0.0.1:{probe_port}/health") == 200  # alive all the same
        redis.start()
        wait_for(lambda: status_of(ready) == 200)


def test_not_ready_while_draining_then_gone_with_the_server(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "endless")
    probe_port = harness.free_port()
    server, url = start_server(dockfile, "--probe-port", str(probe_port), "--grace-period", "5")
    ready = f"http://127.0.0.1:{probe_port}/ready"
    try:
        assert status_of(ready) == 200
        assert httpx.post(f"{url}/runs", json={"query": "x"}).status_code == 202
        server.send_signal(signal.SIGTERM)
        body = answer_with(ready, 503).json()
        assert (body["status"], body["code"]) == ("not_ready", "SHUTTING_DOWN")
        assert status_of(f"http://127.0.0.1:{probe_port}/health") == 200
        assert server.wait(60) in (0, -signal.SIGTERM)
        assert status_of(ready) is None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_the_probe_port_is_checked_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dockfile = write_project(tmp_path, "echo")
    port = harness.free_port()
    assert main(["serve", str(dockfile), "--port", str(port), "--probe-port", str(port)]) == 2
    assert "must differ from the API's port" in capsys.readouterr().err
    assert main(["serve", str(dockfile), "--probe-port", "70000"]) == 2
    assert "--probe-port must be a port number" in capsys.readouterr().err
    redis = "streaming: {backend: redis, redis: {url: 'redis://127.0.0.1:1/0'}}\n"
    dockfile = write_project(tmp_path, "echo", redis)
    assert main(["serve", str(dockfile), "--workers", "2", "--probe-port", "9999"]) == 2
    assert "serves one process" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as taken:
        taken_port = taken.getsockname()[1]
        dockfile = write_project(tmp_path, "echo")
        code = main(["serve", str(dockfile), "--port", str(port), "--probe-port", str(taken_port)])
    assert code == 1
    assert f"cannot listen for probes on 127.0.0.1:{taken_port}" in capsys.readouterr().err


STALLING_AGENT = """
import os
import time

async def stall(payload):
    # holds the event loop, as a broken agent does, until the test lets go (60 s at most)
    deadline = time.monotonic() + 60
    while not os.path.exists(payload["query"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"stalled": True}
"""


def test_a_stalled_event_loop_is_not_ready_on_the_probe_port(tmp_path: Path) -> None:
    probe_port = harness.free_port()
    dockfile = write_project(
        tmp_path,
        "stall",
        f"expose: {{host: 127.0.0.1, probe_port: {probe_port}}}\n",
        module=STALLING_AGENT,
    )
    app = create_app(dockfile)
    runtime = app.state.runtime
    # stalled after one second without a readiness check (ten by default): the test waits
    # for the answer it expects, never for a fixed time
    runtime.probes = ProbeListener("127.0.0.1", probe_port, runtime.health, ready_stale=1.0)
    release = tmp_path / "release"
    probes = f"http://127.0.0.1:{probe_port}"
    with serve_app(app) as url:
        wait_for(lambda: status_of(f"{probes}/ready") == 200)
        stalled = threading.Thread(
            target=httpx.post,
            args=(f"{url}/invoke",),
            kwargs={"json": {"query": str(release)}, "timeout": 90},
        )
        stalled.start()
        try:
            body = answer_with(f"{probes}/ready", 503).json()
            assert (body["status"], body["code"]) == ("stalled", "EVENT_LOOP_STALLED")
            assert status_of(f"{probes}/health") == 200  # stuck only past live_stale
        finally:
            release.touch()
            stalled.join(90)
        wait_for(lambda: status_of(f"{probes}/ready") == 200)

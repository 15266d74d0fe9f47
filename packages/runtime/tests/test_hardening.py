"""Hostile input and bounded resources, over real HTTP: every request-parsing failure is a
4xx with the documented error body, responses carry the security headers, CORS never
pairs a wildcard with credentials, the server bounds slow and excess connections, and a
run the backend lost ends quietly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import EventBus, InMemoryBackend, RunManager
from dockrion_runtime.engine.supervisor import RunSupervisor
from dockrion_runtime.metrics import RuntimeMetrics
from dockrion_runtime.settings import RuntimeSettings
from dockrion_runtime.telemetry import run_telemetry
from dockrion_schema import DockSpec

from .conftest import kill_server, start_server, write_project

Serve = Callable[..., str]


def settings_for(base_dir: Path) -> RuntimeSettings:
    spec = DockSpec.model_validate(
        {
            "version": "1.0",
            "agent": {"name": "unit-agent", "handler": "agent:handle"},
            "io_schema": {},
            "expose": {},
        }
    )
    return RuntimeSettings.from_spec(spec, base_dir)


JSON = {"content-type": "application/json"}
DEEP = b"[" * 100_000 + b"]" * 100_000


def not_json(msg: str) -> dict[str, Any]:
    return {
        "success": False,
        "error": "Request body is not valid JSON",
        "code": "VALIDATION_ERROR",
        "details": [{"loc": ["body"], "msg": msg}],
    }


@pytest.mark.parametrize("path", ["/invoke", "/invoke/stream", "/runs"])
def test_deeply_nested_json_is_a_400_on_every_body_endpoint(serve: Serve, path: str) -> None:
    url = serve("echo")
    response = httpx.post(f"{url}{path}", content=DEEP, headers=JSON)
    assert response.status_code == 400
    assert response.json() == not_json("arrays and objects may be nested at most 64 levels deep")
    # below the parser's own ceiling, our limit still speaks
    nested = b'{"query": "x", "n": ' + b"[" * 100 + b"]" * 100 + b"}"
    response = httpx.post(f"{url}{path}", content=nested, headers=JSON)
    assert response.json() == not_json("arrays and objects may be nested at most 64 levels deep")


def test_the_depth_limit_is_a_setting(serve: Serve) -> None:
    url = serve("echo", "arguments: {max_json_depth: 3}\n")
    ok = httpx.post(f"{url}/invoke", json={"query": "x", "n": [[1]]})
    assert ok.status_code == 200
    deep = httpx.post(f"{url}/invoke", json={"query": "x", "n": [[[1]]]})
    assert deep.json() == not_json("arrays and objects may be nested at most 3 levels deep")


def test_numbers_are_bounded(serve: Serve) -> None:
    url = serve("echo")
    huge = httpx.post(f"{url}/invoke", content=b'{"query": ' + b"9" * 5000 + b"}", headers=JSON)
    assert huge.status_code == 400
    assert huge.json() == not_json(
        "integers may have at most 4300 digits (number out of range at line 1 column 4312)"
    )
    infinite = httpx.post(f"{url}/invoke", content=b'{"query": "x", "n": 1e999}', headers=JSON)
    assert infinite.json() == not_json("a number is too large for a double-precision float")
    nan = httpx.post(f"{url}/invoke", content=b'{"query": "x", "n": NaN}', headers=JSON)
    assert nan.json() == not_json("expected value at line 1 column 21")
    big_but_fine = httpx.post(
        f"{url}/invoke", content=b'{"query": "x", "n": ' + b"9" * 4300 + b"}", headers=JSON
    )
    assert big_but_fine.status_code == 200


def test_content_types_other_than_json_in_utf8_are_415(serve: Serve) -> None:
    url = serve("echo")
    body = b'{"query": "x"}'
    for content_type, error in (
        ("text/plain", "Content-Type 'text/plain' is not JSON; send 'application/json'"),
        (
            "application/x-www-form-urlencoded",
            "Content-Type 'application/x-www-form-urlencoded' is not JSON; send 'application/json'",
        ),
        (
            "application/json; charset=utf-16",
            "charset 'utf-16' is not supported; send JSON in UTF-8",
        ),
    ):
        response = httpx.post(f"{url}/invoke", content=body, headers={"content-type": content_type})
        assert response.status_code == 415, content_type
        assert response.json() == {
            "success": False,
            "error": error,
            "code": "UNSUPPORTED_MEDIA_TYPE",
            "details": None,
        }
    # JSON in UTF-16 under a JSON content type is not JSON in UTF-8
    utf16 = httpx.post(f"{url}/invoke", content='{"query": "x"}'.encode("utf-16"), headers=JSON)
    assert utf16.json() == not_json("expected value at line 1 column 1")
    for accepted in (
        {},  # no content type: read as JSON
        JSON,
        {"content-type": "application/json; charset=UTF-8"},
        {"content-type": "application/merge-patch+json"},
    ):
        response = httpx.post(f"{url}/invoke", content=body, headers=accepted)
        assert response.status_code == 200, accepted


def test_last_event_id_and_query_numbers_are_parsed_strictly(serve: Serve) -> None:
    url = serve("echo")
    run_id = httpx.post(f"{url}/runs", json={"query": "a"}).json()["run_id"]
    refused = {
        "success": False,
        "error": "Last-Event-ID must be the sequence number of an event (at most 18 ASCII digits)",
        "code": "VALIDATION_ERROR",
        "details": None,
    }
    # b"\xb2" is "²" in Latin-1, how HTTP header bytes are read: isdigit() is true for it
    for value in (b"9" * 5000, b"\xb2", b"-1", b"1.0", b"\xd9\xa1"):
        response = httpx.get(f"{url}/runs/{run_id}/events", headers={"Last-Event-ID": value})
        assert (response.status_code, response.json()) == (400, refused), value
    response = httpx.get(f"{url}/runs/{run_id}/events", params={"from_sequence": "9" * 5000})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": f"Query parameter 'from_sequence' must be an integer at least 0, got '{'9' * 40}'",
        "code": "VALIDATION_ERROR",
        "details": None,
    }


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_malformed_content_length_is_a_400_with_the_error_body(
    tmp_path: Path,
) -> None:
    process, url = start_server(write_project(tmp_path, "echo"))
    try:
        for length in (b"9" * 5000, b"\xb2", b"-5"):
            answer = raw_exchange(
                url,
                b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + length + b"\r\n\r\n{}",
            )
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 ")
            assert b"content-type: application/json" in head.lower()
            assert body == (
                b'{"success": false, "error": "Malformed HTTP request", "code": "BAD_REQUEST", "details": null}'
            )
    finally:
        kill_server(process)


def test_unknown_routes_and_wrong_methods_answer_json(serve: Serve) -> None:
    url = serve("echo")
    missing = httpx.get(f"{url}/nope")
    assert (missing.status_code, missing.json()) == (
        404,
        {"success": False, "error": "No route for GET /nope", "code": "NOT_FOUND", "details": None},
    )
    wrong = httpx.put(f"{url}/runs/abc")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, HEAD"
    assert wrong.json() == {
        "success": False,
        "error": "Method PUT is not allowed here; allowed: DELETE, GET, HEAD",
        "code": "METHOD_NOT_ALLOWED",
        "details": None,
    }
    assert httpx.get(f"{url}/invoke").json()["code"] == "METHOD_NOT_ALLOWED"


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


def test_every_response_carries_the_security_headers(serve: Serve) -> None:
    url = serve("echo")
    responses = [
        httpx.get(f"{url}/health"),
        httpx.get(f"{url}/nope"),
        httpx.post(f"{url}/invoke", json={"nope": 1}),
        httpx.post(f"{url}/invoke", json={"query": "x"}),
        httpx.post(f"{url}/invoke/stream", json={"query": "x"}),
        httpx.options(
            f"{url}/invoke",
            headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"},
        ),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)


def test_security_headers_are_configurable(serve: Serve) -> None:
    url = serve(
        "echo",
        "expose:\n  host: 127.0.0.1\n  security_headers:\n"
        "    X-Frame-Options: SAMEORIGIN\n    Referrer-Policy: null\n"
        "    Strict-Transport-Security: max-age=63072000\n",
    )
    headers = httpx.get(f"{url}/health").headers
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert "referrer-policy" not in headers
    assert headers["strict-transport-security"] == "max-age=63072000"
    assert headers["x-content-type-options"] == "nosniff"


def test_default_cors_is_a_wildcard_without_credentials(serve: Serve) -> None:
    url = serve("echo")
    origin = {"Origin": "https://evil.example"}
    simple = httpx.get(f"{url}/health", headers={**origin, "Cookie": "session=1"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in simple.headers
    preflight = httpx.options(
        f"{url}/invoke",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers


def test_credentials_only_for_listed_origins_and_no_reflection(serve: Serve) -> None:
    url = serve("echo", "expose:\n  host: 127.0.0.1\n  cors: {origins: ['https://app.example']}\n")
    listed = httpx.get(f"{url}/health", headers={"Origin": "https://app.example"})
    assert listed.headers["access-control-allow-origin"] == "https://app.example"
    assert listed.headers["access-control-allow-credentials"] == "true"
    other = httpx.get(f"{url}/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        f"{url}/invoke",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example"


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[str]:
    process, url = start_server(
        write_project(tmp_path, "echo"), "--header-timeout", "1", "--max-connections", "4"
    )
    yield url
    kill_server(process)


def test_a_client_sending_its_headers_byte_by_byte_is_cut_off(guarded_server: str) -> None:
    host, port = guarded_server.removeprefix("http://").split(":")
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        received = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed by the server
            sock.setblocking(False)
            try:
                received = sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if received:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the server kept reading a request head for 500 s")
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert body == (
        b'{"success": false, "error": "Request line and headers not received within 1s", '
        b'"code": "REQUEST_TIMEOUT", "details": null}'
    )


def test_a_connection_that_sends_nothing_is_closed(guarded_server: str) -> None:
    host, port = guarded_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        answer = b""
        while chunk := sock.recv(65536):  # returns b"" once the server closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_request_head_over_the_size_limit_is_a_400(guarded_server: str) -> None:
    # The same answer from either HTTP parser (httptools where installed, h11 otherwise).
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000
    host, port = guarded_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server may close before it has read all
            sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert body == (
        b'{"success": false, "error": "The request line and headers are over the 16384 byte '
        b'limit", "code": "BAD_REQUEST", "details": null}'
    )


def test_connections_past_the_cap_get_503_then_service_resumes(guarded_server: str) -> None:
    host, port = guarded_server.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port)), timeout=60) for _ in range(4)]
    try:
        busy = httpx.get(f"{guarded_server}/health", timeout=30)
        assert busy.status_code == 503
        assert busy.json() == {
            "success": False,
            "error": "The server is at its limit of 4 open connections; try again later",
            "code": "SERVER_BUSY",
            "details": None,
        }
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 30
    while httpx.get(f"{guarded_server}/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_run_its_backend_lost_ends_its_task_cleanly() -> None:
    """A Redis restarted without persistence forgets runs: the run's task must end without
    an exception (else asyncio logs "Task exception was never retrieved")."""

    async def scenario() -> BaseException | None:
        backend = InMemoryBackend()
        runs = RunManager(EventBus(backend))
        settings = settings_for(Path("."))
        telemetry = run_telemetry(
            settings, RuntimeMetrics(settings.name, "0"), None, lambda: backend
        )
        supervisor = RunSupervisor(settings, telemetry)

        class ForgettingBackendAgent:
            async def invoke(self, payload: Any, context: Any, **options: Any) -> Any:
                await context.emit_token("before")
                await backend.delete_run(context.run_id)
                return {"answer": "after"}

        run = await runs.create_run()
        context = runs.get_context(run.run_id)
        assert context is not None
        task = supervisor.spawn(
            supervisor.execute_run(runs, ForgettingBackendAgent(), {}, context)  # type: ignore[arg-type]
        )
        await asyncio.wait([task])
        return task.exception()

    assert asyncio.run(scenario()) is None


def test_serve_refuses_a_non_positive_limit(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockrion_runtime",
            "serve",
            str(write_project(tmp_path, "echo")),
            "--header-timeout",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--header-timeout must be positive" in result.stderr

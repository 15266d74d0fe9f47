"""Every refusal has one body: `{"success": false, "error", "code", "details"}`. Auth,
permission and rate-limit refusals add the `detail` object of the auth errors' documented
shape, holding the same facts. Checked on a real `dockrion-runtime serve` process, one
refusal of each kind the runtime produces, and on the mapping shared with WebSocket
refusals."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import (
    BackendConnectionError,
    EventsExpiredError,
    InvalidRunIdError,
    RunExistsError,
    RunNotFoundError,
)
from dockrion_runtime.errors import (
    STATUS_BY_CODE,
    AuthFailed,
    Refused,
    RuntimeHTTPError,
    refusal,
)

from .conftest import kill_server, start_server, write_project

AGENT = """
def answer(payload):
    if payload["query"] == "fail":
        raise RuntimeError("the agent broke")
    return {"answer": payload["query"]}
"""

DOCKFILE = """
expose: {host: 127.0.0.1}
arguments: {max_body_bytes: 2000}
auth:
  api_keys:
    prefix: shape
    roles: {alice: [invoker], bob: [limited], rita: [reader]}
  roles:
    - {name: invoker, permissions: [invoke]}
    - {name: limited, permissions: [invoke]}
    - {name: reader, permissions: [read_docs]}
  rate_limits: {limited: 1/hour}
"""

ALICE = {"X-API-Key": "key-alice"}
CODE = re.compile(r"^[A-Z][A-Z_]*$")
AUTH_STATUSES = {401, 403, 429}


def assert_one_shape(status: int, body: Any, what: str) -> None:
    assert isinstance(body, dict), what
    assert body["success"] is False, what
    assert isinstance(body["error"], str) and body["error"], what
    assert CODE.match(body["code"]), what
    assert "details" in body, what
    if status in AUTH_STATUSES:
        detail = body["detail"]
        assert (detail["message"], detail["code"]) == (body["error"], body["code"]), what
        assert detail["details"] == body["details"], what


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("alice", "bob", "rita"):
        monkeypatch.setenv(f"SHAPE_API_KEY_{name.upper()}", f"key-{name}")
    dockfile = write_project(tmp_path, "answer", DOCKFILE, module=AGENT)
    process, url = start_server(dockfile)
    try:
        yield url
    finally:
        kill_server(process)


def raw_request(url: str, data: bytes) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_every_refusal_has_the_one_error_shape(server: str) -> None:
    url = server
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/runs?run_id=taken", json={"query": "x"}, headers=ALICE).raise_for_status()
        answers = {
            "no route": client.get("/no/such/route"),
            "wrong method": client.delete("/health"),
            "no key": client.post("/invoke", json={"query": "x"}),
            "wrong key": client.post("/invoke", json={"query": "x"}, headers={"X-API-Key": "k"}),
            "no permission": client.post(
                "/invoke", json={"query": "x"}, headers={"X-API-Key": "key-rita"}
            ),
            "invalid body": client.post("/invoke", json={"other": 1}, headers=ALICE),
            "malformed JSON": client.post(
                "/invoke",
                content=b"{",
                headers={**ALICE, "Content-Type": "application/json"},
            ),
            "media type": client.post(
                "/invoke", content=b"x", headers={**ALICE, "Content-Type": "text/plain"}
            ),
            "too large": client.post("/invoke", json={"query": "x" * 5000}, headers=ALICE),
            "agent raised": client.post("/invoke", json={"query": "fail"}, headers=ALICE),
            "unknown run": client.get("/runs/no-such-run", headers=ALICE),
            "bad run id": client.get("/runs/_bad", headers=ALICE),
            "run id taken": client.post("/runs?run_id=taken", json={"query": "x"}, headers=ALICE),
            "bad Last-Event-ID": client.get(
                "/runs/taken/events", headers={**ALICE, "Last-Event-ID": "x"}
            ),
        }
        limited = {"X-API-Key": "key-bob"}
        for _ in range(3):  # 1/hour: the first or second call is refused, never the third
            answers["rate limited"] = client.post("/invoke", json={"query": "x"}, headers=limited)
            if answers["rate limited"].status_code == 429:
                break
    for what, response in answers.items():
        assert response.status_code >= 400, what
        assert_one_shape(response.status_code, response.json(), what)
        seen[response.json()["code"]] = response.status_code
    status, body = raw_request(url, b"NOT A REQUEST\r\n\r\n")
    assert status == 400
    assert_one_shape(status, json.loads(body), "malformed request line")
    assert {
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "AUTH_ERROR",
        "FORBIDDEN",
        "VALIDATION_ERROR",
        "UNSUPPORTED_MEDIA_TYPE",
        "PAYLOAD_TOO_LARGE",
        "AGENT_EXECUTION_ERROR",
        "CONFLICT",
        "RATE_LIMIT_EXCEEDED",
    } <= set(seen)


@pytest.mark.parametrize(
    "exc",
    [
        *(RuntimeHTTPError(f"refused with {code}", code) for code in STATUS_BY_CODE),
        AuthFailed("Invalid API key", "INVALID_CREDENTIALS"),
        Refused("no", "FORBIDDEN", "INSUFFICIENT_PERMISSIONS", {"required_permissions": []}),
        Refused("slow down", "RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED", {"retry_after": 9}),
        RunNotFoundError("r1"),
        RunExistsError("r1"),
        InvalidRunIdError("run id cannot start with an underscore"),
        EventsExpiredError("r1", 0, 3),
        BackendConnectionError("redis is down"),
        ValueError("anything else"),
    ],
    ids=lambda exc: type(exc).__name__ + ":" + str(getattr(exc, "code", "")),
)
def test_the_mapping_http_and_websocket_share_gives_the_one_shape(exc: Exception) -> None:
    status, body, _ = refusal(exc)
    assert status >= 400
    assert_one_shape(status, body, repr(exc))

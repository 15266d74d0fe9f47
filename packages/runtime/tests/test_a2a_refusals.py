"""A2A's refusals on a live server: hostile bodies and params get JSON-RPC errors (never a
crash), /a2a counts against the caller's rate limit (429 over HTTP), a caller whose roles
lack `invoke` is refused 403 while the agent card stays public."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app
from .test_a2a import ALICE, AUTH, BOB, ENVIRON, _project, words_url

pytest.importorskip("a2a.client")

__all__ = ["words_url"]  # the module's server, a fixture of test_a2a.py


HOSTILE_PARAMS: list[Any] = [
    {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"url": "file:///etc"}]}},
    {"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}},
    {"message": {"messageId": 7, "parts": [{"text": "x"}]}},
    {"message": {"messageId": "m", "parts": "text"}},
    {"message": {"messageId": "m", "parts": [None]}},
    {"message": {"messageId": "m", "parts": [{"data": [1, 2]}]}},  # no object, no text
    {"message": {"messageId": "m", "taskId": "no-such-task", "parts": [{"text": "x"}]}},
    {"message": {"messageId": "m", "taskId": "../../x", "parts": [{"text": "x"}]}},
    {"message": {"messageId": "m", "contextId": "bad id!", "parts": [{"text": "x"}]}},
    {"message": {"messageId": "m" * 500, "parts": [{"text": "x"}]}},
    {"id": None},
    {"id": "x" * 10_000},
    {"id": ["list"]},
    [],
]


def test_bad_input_gets_a_json_rpc_error_never_a_crash(words_url: str) -> None:
    with httpx.Client(headers=ALICE, timeout=30) as http:
        for method in ("SendMessage", "SendStreamingMessage", "GetTask", "CancelTask"):
            for params in HOSTILE_PARAMS:
                body = {"jsonrpc": "2.0", "id": "h", "method": method, "params": params}
                answer = http.post(f"{words_url}/a2a", json=body)
                assert answer.status_code == 200, (method, params, answer.text)
                error = answer.json()["error"]
                assert error["code"] in (-32600, -32602, -32001, -32004), (method, params, error)
        for raw in (b"[]", b'"text"', b"null", b'{"jsonrpc": "1.0", "method": "GetTask"}'):
            answer = http.post(
                f"{words_url}/a2a", content=raw, headers={"content-type": "application/json"}
            )
            assert answer.json()["error"]["code"] == -32600, raw
        answer = http.post(f"{words_url}/a2a", content=b"{}", headers={"content-type": "text/xml"})
        assert answer.status_code == 415


def test_a2a_counts_against_the_callers_rate_limit(tmp_path: Path) -> None:
    dockfile = _project(tmp_path, "words")
    limited = AUTH.replace("{prefix: team}\n", "{prefix: team}\n  rate_limits: {default: 2/hour}\n")
    dockfile.write_text(dockfile.read_text().replace(AUTH, limited))
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}}
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        answers = [httpx.post(f"{base}/a2a", json=body, headers=ALICE) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "retry-after" in answers[2].headers


def test_a_caller_without_the_invoke_permission_is_refused_403(tmp_path: Path) -> None:
    dockfile = _project(tmp_path, "words")
    roles = (
        "auth:\n  mode: api_key\n  api_keys:\n    prefix: team\n"
        "    roles: {alice: [invoker], bob: [reader]}\n"
        "  roles:\n    - {name: invoker, permissions: [invoke]}\n"
        "    - {name: reader, permissions: [read_docs]}\n"
    )
    dockfile.write_text(dockfile.read_text().replace(AUTH, roles))
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}}
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        bob = httpx.post(f"{base}/a2a", json=body, headers=BOB)
        alice = httpx.post(f"{base}/a2a", json=body, headers=ALICE)
        card = httpx.get(f"{base}/.well-known/agent-card.json")  # public: discovery
    assert bob.status_code == 403 and bob.json()["code"] == "FORBIDDEN"
    assert alice.status_code == 200 and alice.json()["error"]["code"] == -32001
    assert card.status_code == 200 and card.json()["name"] == "a2a-agent"

"""API-key auth and run ownership, over real HTTP."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockrion_runtime import AuthConfigError, create_app

from .conftest import write_project

Serve = Callable[..., str]
KEY = "sk-test-0123456789abcdef"


def test_protected_endpoints_need_a_key(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = serve("no_context", "auth: {mode: api_key}\n", environ={"DOCKRION_API_KEY": KEY})
    missing = httpx.post(f"{url}/invoke", json={"query": "x"})
    assert missing.status_code == 401
    message = "API key required: send it in the 'X-API-Key' header or 'Authorization: Bearer <key>'"
    # the one error body, and the `detail` object clients of the documented auth shape read
    assert missing.json() == {
        "success": False,
        "error": message,
        "code": "AUTH_ERROR",
        "details": {"reason": "MISSING_CREDENTIALS"},
        "detail": {
            "message": message,
            "code": "AUTH_ERROR",
            "error": "MISSING_CREDENTIALS",
            "details": {"reason": "MISSING_CREDENTIALS"},
        },
    }
    wrong = httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": KEY + "x"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"]["message"] == "Invalid API key"
    # auth runs before body validation: no key and a bad body is still a 401
    assert httpx.post(f"{url}/invoke", json={"bad": 1}).status_code == 401
    good = httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": KEY})
    assert good.status_code == 200
    bearer = httpx.post(
        f"{url}/invoke", json={"query": "x"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 200
    for path in ("/health", "/ready", "/info", "/schema", "/"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    for method, path in (
        ("POST", "/invoke/stream"),
        ("POST", "/runs"),
        ("GET", "/runs/x"),
        ("GET", "/runs/x/events"),
        ("DELETE", "/runs/x"),
    ):
        assert httpx.request(method, f"{url}{path}", json={"query": "x"}).status_code == 401, path
    assert KEY not in caplog.text


def test_custom_header_without_bearer(serve: Serve) -> None:
    url = serve(
        "no_context",
        "auth:\n  mode: api_key\n  api_keys: {env_var: MY_KEY, header: X-Custom, allow_bearer: false}\n",
        environ={"MY_KEY": KEY},
    )
    assert (
        httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-Custom": KEY}).status_code
        == 200
    )
    bearer = httpx.post(
        f"{url}/invoke", json={"query": "x"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 401
    assert "'X-Custom' header" in bearer.json()["detail"]["message"]


def test_runs_belong_to_the_key_that_created_them(serve: Serve) -> None:
    url = serve(
        "echo",
        "auth:\n  api_keys: {prefix: prod}\n",
        environ={"PROD_API_KEY_ALICE": "key-alice", "PROD_API_KEY_BOB": "key-bob"},
    )
    alice, bob = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}
    run_id = httpx.post(f"{url}/runs", json={"query": "secret plans"}, headers=alice).json()[
        "run_id"
    ]
    assert httpx.get(f"{url}/runs/{run_id}", headers=alice).status_code == 200
    for method, path in (
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/events"),
        ("DELETE", f"/runs/{run_id}"),
    ):
        response = httpx.request(method, f"{url}{path}", headers=bob)
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=alice, timeout=60) as events:
        assert b"event: complete" in b"".join(events.iter_bytes())
    # a client-chosen id is the run's id exactly: one run holds it, and another caller who
    # chooses it is refused the same way as its owner, learning nothing of the run
    mine = httpx.post(
        f"{url}/runs", params={"run_id": "shared-id"}, json={"query": "x"}, headers=alice
    )
    theirs = httpx.post(
        f"{url}/runs", params={"run_id": "shared-id"}, json={"query": "x"}, headers=bob
    )
    again = httpx.post(
        f"{url}/runs", params={"run_id": "shared-id"}, json={"query": "x"}, headers=alice
    )
    assert (mine.status_code, mine.json()["run_id"]) == (202, "shared-id")
    assert (theirs.status_code, theirs.json()["code"]) == (409, "CONFLICT")
    assert theirs.json() == again.json()
    assert httpx.get(f"{url}/runs/shared-id", headers=bob).status_code == 404
    assert httpx.get(f"{url}/runs/shared-id", headers=alice).status_code == 200


def test_missing_key_is_a_start_up_error(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo", "auth: {mode: api_key}\n")
    with pytest.raises(AuthConfigError, match="set the environment variable DOCKRION_API_KEY"):
        create_app(dockfile, environ={})
    result = subprocess.run(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "set the environment variable DOCKRION_API_KEY" in result.stderr


def test_key_from_the_env_file_beside_the_dockfile(serve: Serve, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DOCKRION_API_KEY={KEY}\n")
    url = serve("no_context", "auth: {mode: api_key}\n", environ={})
    assert (
        httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": KEY}).status_code
        == 200
    )


def test_prefix_accepts_only_the_documented_variable_names(serve: Serve) -> None:
    url = serve(
        "no_context",
        "auth:\n  api_keys: {prefix: team}\n",
        environ={
            "TEAM_API_KEY": "key-default",
            "TEAM_API_KEY_ALICE": "key-alice",
            "TEAM_OTHER": "not-a-key",
            "TEAM_API_KEYRING": "not-a-key-either",
            "TEAM_API_KEY_": "nor-this",
        },
    )
    for key in ("key-default", "key-alice"):
        ok = httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": key})
        assert ok.status_code == 200, key
    for value in ("not-a-key", "not-a-key-either", "nor-this"):
        refused = httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": value})
        assert refused.status_code == 401, value


def test_prefix_without_a_documented_variable_is_a_start_up_error(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo", "auth:\n  api_keys: {prefix: team}\n")
    with pytest.raises(AuthConfigError, match="TEAM_API_KEY"):
        create_app(dockfile, environ={"TEAM_OTHER": "x"})

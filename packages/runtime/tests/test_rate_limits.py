"""Rate limits per principal: 429 RATE_LIMIT_EXCEEDED with Retry-After and the RateLimit
headers; per process on memory, shared by every instance through Redis; the most
generous limit of a principal's roles; a Redis that is gone or does not answer is 503
BACKEND_UNAVAILABLE (quickly, with one warning in the log), until it is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from dockrion_runtime.auth.rate_limits import REDIS_TIMEOUT, Limit, _decide
from dockrion_schema import RATE_WINDOW_SECONDS, normalize_rate_limit

from .conftest import launch, write_project

Serve = Callable[..., str]


def invoke(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-API-Key": key})


def assert_limited(response: httpx.Response, count: int, window: int) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["detail"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(response.headers["retry-after"]) >= 1
    assert body["details"]["retry_after"] == int(response.headers["retry-after"])
    assert response.headers["ratelimit-limit"] == str(count)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-policy"] == f"{count};w={window}"


def test_memory_counts_per_principal(serve: Serve) -> None:
    url = serve(
        "no_context",
        "auth:\n  api_keys: {prefix: team}\n  rate_limits: {default: 2/hour}\n",
        environ={"TEAM_API_KEY_ALICE": "key-a", "TEAM_API_KEY_BOB": "key-b"},
    )
    first = invoke(url, "key-a")
    assert first.status_code == 200
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert invoke(url, "key-a").status_code == 200
    assert_limited(invoke(url, "key-a"), 2, 3600)
    stream = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, headers={"X-API-Key": "key-b"})
    assert stream.status_code == 200  # Bob has his own count; streams carry it too
    assert (stream.headers["ratelimit-limit"], stream.headers["ratelimit-remaining"]) == ("2", "1")
    # refused requests do not count, and other protected endpoints count too
    assert httpx.post(f"{url}/invoke", json={"query": "x"}).status_code == 401
    assert httpx.get(f"{url}/runs/nope", headers={"X-API-Key": "key-b"}).status_code == 404
    assert_limited(invoke(url, "key-b"), 2, 3600)
    assert httpx.get(f"{url}/health").status_code == 200  # public endpoints never count


def test_float_rounding_never_costs_a_request_of_the_remaining_count() -> None:
    # clock readings where `now + 1800 - now` comes out a hair above 1800
    limit = Limit.parse("2/hour")
    for now in (3631.626946558053, 64501.504160740405, 130201.53534647937):
        decision, new_tat = _decide(limit, now, None)
        assert (decision.allowed, decision.remaining) == (True, 1)
        assert _decide(limit, now, new_tat)[0].remaining == 0


def test_the_most_generous_role_wins(serve: Serve) -> None:
    url = serve(
        "no_context",
        "auth:\n  api_keys: {prefix: team, roles: {alice: [free, pro]}}\n"
        "  roles:\n    - {name: free, permissions: [invoke]}\n"
        "    - {name: pro, permissions: [invoke]}\n"
        "  rate_limits: {free: 1/hour, pro: 3/hour}\n",
        environ={"TEAM_API_KEY_ALICE": "key-a"},
    )
    assert [invoke(url, "key-a").status_code for _ in range(3)] == [200, 200, 200]
    assert_limited(invoke(url, "key-a"), 3, 3600)


def test_redis_shares_the_count_across_instances(
    tmp_path: Path, redis_server: Any, servers: list[subprocess.Popen[bytes]], monkeypatch: Any
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    dockfile = write_project(
        tmp_path,
        "no_context",
        "auth:\n  rate_limits: {default: 3/hour}\n"
        f"streaming:\n  backend: redis\n  redis: {{url: '{redis_server.url}', "
        f"key_prefix: {prefix}}}\n",
    )
    monkeypatch.setenv("DOCKRION_API_KEY", "shared-key")
    first, second = launch(dockfile, servers), launch(dockfile, servers)
    assert invoke(first, "shared-key").status_code == 200
    assert invoke(second, "shared-key").status_code == 200
    assert invoke(first, "shared-key").status_code == 200
    assert_limited(invoke(second, "shared-key"), 3, 3600)
    assert_limited(invoke(first, "shared-key"), 3, 3600)
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert len(client.keys(f"{prefix}:ratelimit:*")) == 1  # under its own prefix
    finally:
        client.close()


# --- Redis unavailable -----------------------------------------------------------------------

KEY = {"X-API-Key": "outage-key"}
# A refusal comes within the limiter's own timeout, with room for a loaded machine: well
# under what redis-py would wait (5 s by default in recent versions, forever in older ones).
FAST = REDIS_TIMEOUT + 2.5


@pytest.fixture
def limited_on_redis(
    tmp_path: Path,
    make_redis_server: Callable[..., Any],
    servers: list[subprocess.Popen[bytes]],
    monkeypatch: Any,
) -> tuple[str, Any, Path]:
    """A rate-limited server counting in a Redis of its own: its URL, the Redis, its log."""
    server = make_redis_server()
    server.start()
    dockfile = write_project(
        tmp_path,
        "no_context",
        "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n"
        "auth:\n  rate_limits: {default: 100000/hour}\n"
        f"streaming:\n  backend: redis\n  redis: {{url: '{server.url}', "
        f"key_prefix: t{uuid.uuid4().hex[:8]}}}\n",
    )
    monkeypatch.setenv("DOCKRION_API_KEY", KEY["X-API-Key"])
    url = launch(dockfile, servers, log=tmp_path / "server.log")
    return url, server, tmp_path / "server.log"


def timed_invoke(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(f"{url}/invoke", json={"query": "x"}, headers=KEY, timeout=30)
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "BACKEND_UNAVAILABLE"
    assert "Rate limits cannot be checked" in body["error"]
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text
    assert int(response.headers["retry-after"]) >= 1
    assert body["details"]["retry_after"] == int(response.headers["retry-after"])
    assert body["request_id"] == response.headers["x-request-id"]


def ws_url(url: str) -> str:
    return "ws" + url.removeprefix("http") + "/invoke/ws"


def assert_handshake_unavailable(url: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(url), additional_headers=KEY, open_timeout=30)
    response = refused.value.response
    assert response.status_code == 503
    assert response.body is not None
    body = json.loads(response.body)
    assert (body["success"], body["code"]) == (False, "BACKEND_UNAVAILABLE")
    assert int(response.headers["Retry-After"]) >= 1


def assert_handshake_accepted(url: str) -> None:
    with connect(ws_url(url), additional_headers=KEY, open_timeout=30, close_timeout=10) as s:
        s.send(json.dumps({"query": "x"}))
        while json.loads(s.recv(timeout=30))["type"] != "complete":
            pass


def until_invoke_succeeds(url: str, seconds: float = 30) -> None:
    """Redis is back: `/invoke` answers 200 again, without a restart (asked until then)."""
    deadline = time.monotonic() + seconds
    while (response := timed_invoke(url)[0]).status_code != 200:
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "the limiter did not recover"
        time.sleep(0.1)


def warnings_in(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "rate limits: Redis" in line]


def test_a_redis_outage_is_503_backend_unavailable_until_redis_is_back(
    limited_on_redis: tuple[str, Any, Path],
) -> None:
    url, server, log = limited_on_redis
    assert timed_invoke(url)[0].status_code == 200
    server.process.kill()  # Redis dies
    server.process.wait(30)
    for _ in range(3):
        response, seconds = timed_invoke(url)
        assert_unavailable(response)
        assert seconds < FAST
    stream = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, headers=KEY, timeout=30)
    assert_unavailable(stream)
    assert_handshake_unavailable(url)
    assert httpx.post(f"{url}/invoke", json={"query": "x"}, timeout=30).status_code == 401
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # needs no rate limit
    server.start()  # back on the same port, empty
    until_invoke_succeeds(url)
    stream = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, headers=KEY, timeout=30)
    assert stream.status_code == 200 and stream.headers["ratelimit-limit"] == "100000"
    assert_handshake_accepted(url)
    # one warning for the outage (not one a request), one when Redis answers again
    text = log.read_text()
    assert "Traceback" not in text
    lines = warnings_in(log)
    assert len(lines) == 2, text
    assert "does not answer" in lines[0] and "BACKEND_UNAVAILABLE" in lines[0]
    assert "answers again" in lines[1]


def test_a_redis_that_does_not_answer_fails_fast(
    limited_on_redis: tuple[str, Any, Path],
) -> None:
    url, server, log = limited_on_redis
    assert timed_invoke(url)[0].status_code == 200
    os.kill(server.process.pid, signal.SIGSTOP)  # still listening, never answering
    try:
        response, seconds = timed_invoke(url)
        assert_unavailable(response)
        assert seconds < FAST
        started = time.monotonic()
        assert_handshake_unavailable(url)
        assert time.monotonic() - started < FAST
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    until_invoke_succeeds(url)
    assert_handshake_accepted(url)
    assert "Traceback" not in log.read_text()


def test_a_limit_counts_over_the_window_the_dockfile_names() -> None:
    for window, seconds in RATE_WINDOW_SECONDS.items():
        assert Limit.parse(normalize_rate_limit(f"7/{window}")) == Limit(7, seconds)

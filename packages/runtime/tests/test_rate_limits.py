"""Rate limits per principal: 429 RATE_LIMIT_EXCEEDED with Retry-After and the RateLimit
headers; per process on memory, shared by every instance through Redis; the most
generous limit of a principal's roles."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dockrion_runtime.rate_limits import Limit
from dockrion_schema import RATE_WINDOW_SECONDS, normalize_rate_limit

from .conftest import kill_server, start_server, write_project

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


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill_server(process)


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
    urls = []
    for _ in range(2):
        process, url = start_server(dockfile)
        servers.append(process)
        urls.append(url)
    first, second = urls
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


def test_a_limit_counts_over_the_window_the_dockfile_names() -> None:
    for window, seconds in RATE_WINDOW_SECONDS.items():
        assert Limit.parse(normalize_rate_limit(f"7/{window}")) == Limit(7, seconds)

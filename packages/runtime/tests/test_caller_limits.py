"""Per-caller bounds on work going at once: one caller's runs (`max_runs_per_caller`) and
open streams (`max_streams_per_caller`), a role's own bounds, refused 429 with
`Retry-After`; per process on memory, shared by every instance through Redis. One caller
filling its share leaves the others theirs."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dockrion_schema import DockfileError, parse_dockspec

from .conftest import launch, write_project

Serve = Callable[..., str]

GATED = """
import os, time

def gated(payload, context=None):
    # waits for the gate file (visible from every server process), at most 60 s
    deadline = time.monotonic() + 60
    while not os.path.exists(payload["query"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"done": True}
"""

KEYS = {"TEAM_API_KEY_ALICE": "key-a", "TEAM_API_KEY_BOB": "key-b", "TEAM_API_KEY_CARL": "key-c"}


def post_run(url: str, key: str, gate: Path) -> httpx.Response:
    return httpx.post(
        f"{url}/runs", json={"query": str(gate)}, headers={"X-API-Key": key}, timeout=30
    )


def assert_refused(response: httpx.Response, code: str, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == code
    assert response.json()["details"]["limit"] == limit
    assert int(response.headers["retry-after"]) >= 1


def wait_finished(url: str, key: str, run_ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    for run_id in run_ids:
        while True:
            status = httpx.get(f"{url}/runs/{run_id}", headers={"X-API-Key": key}).json()
            if status["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)


def test_one_caller_cannot_take_every_run(serve: Serve, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    url = serve(
        "gated",
        "auth:\n  api_keys: {prefix: team, roles: {carl: [batch]}}\n"
        "  roles:\n    - {name: batch, permissions: [invoke], max_runs: 3}\n"
        "    - {name: default, permissions: [invoke, read_logs]}\n"
        "  max_runs_per_caller: 2\n",
        GATED,
        environ=KEYS,
    )
    alice = [post_run(url, "key-a", gate) for _ in range(2)]
    assert [answer.status_code for answer in alice] == [202, 202]
    assert_refused(post_run(url, "key-a", gate), "TOO_MANY_RUNS", 2)
    # every way of starting a run counts
    stream = httpx.post(
        f"{url}/invoke/stream", json={"query": str(gate)}, headers={"X-API-Key": "key-a"}
    )
    assert_refused(stream, "TOO_MANY_RUNS", 2)
    invoke = httpx.post(f"{url}/invoke", json={"query": str(gate)}, headers={"X-API-Key": "key-a"})
    assert_refused(invoke, "TOO_MANY_RUNS", 2)
    # the others still have their share; a role has its own bound
    assert post_run(url, "key-b", gate).status_code == 202
    carl = [post_run(url, "key-c", gate).status_code for _ in range(4)]
    assert carl[:3] == [202, 202, 202] and carl[3] == 429
    gate.touch()
    wait_finished(url, "key-a", [answer.json()["run_id"] for answer in alice])
    assert post_run(url, "key-a", gate).status_code == 202  # places given back


def test_one_caller_cannot_hold_every_stream(serve: Serve, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    url = serve(
        "gated",
        "auth:\n  api_keys: {prefix: team}\n  max_streams_per_caller: 1\n",
        GATED,
        environ=KEYS,
    )
    run_id = post_run(url, "key-a", gate).json()["run_id"]
    headers = {"X-API-Key": "key-a"}
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=headers, timeout=30) as held:
        assert held.status_code == 200
        second = httpx.get(f"{url}/runs/{run_id}/events", headers=headers, timeout=30)
        assert_refused(second, "TOO_MANY_STREAMS", 1)
        gate.touch()
        held.read()
    # the stream ended and gave its place back
    again = httpx.get(f"{url}/runs/{run_id}/events", headers=headers, timeout=30)
    assert again.status_code == 200 and b"event: complete" in again.content


def test_redis_shares_a_caller_s_runs_across_instances(
    tmp_path: Path, redis_server: Any, servers: list[subprocess.Popen[bytes]], monkeypatch: Any
) -> None:
    gate = tmp_path / "gate"
    prefix = f"t{uuid.uuid4().hex[:8]}"
    dockfile = write_project(
        tmp_path,
        "gated",
        "auth:\n  api_keys: {prefix: team}\n  max_runs_per_caller: 2\n"
        f"streaming:\n  backend: redis\n  redis: {{url: '{redis_server.url}', "
        f"key_prefix: {prefix}}}\n",
        GATED,
    )
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    one, two = launch(dockfile, servers), launch(dockfile, servers)
    started = [post_run(one, "key-a", gate), post_run(two, "key-a", gate)]
    assert [answer.status_code for answer in started] == [202, 202]
    assert_refused(post_run(one, "key-a", gate), "TOO_MANY_RUNS", 2)
    assert_refused(post_run(two, "key-a", gate), "TOO_MANY_RUNS", 2)
    assert post_run(two, "key-b", gate).status_code == 202
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert len(client.keys(f"{prefix}:slots:runs:*")) == 2  # alice's and bob's
    finally:
        client.close()
    gate.touch()
    wait_finished(one, "key-a", [started[0].json()["run_id"]])
    wait_finished(two, "key-a", [started[1].json()["run_id"]])
    deadline = time.monotonic() + 30
    while post_run(two, "key-a", gate).status_code != 202:  # the places are given back
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_default_leaves_room_for_others() -> None:
    base = 'version: "1.0"\nagent: {name: a, handler: "m:f"}\nio_schema: {}\nexpose: {}\n'
    spec = parse_dockspec(base + "auth: {}\n")
    assert spec.auth is not None and spec.streaming is None
    assert spec.auth.max_runs_per_caller < 10_000  # the memory backend's max_runs default
    small = parse_dockspec(base + "auth: {}\nstreaming: {memory: {max_runs: 100}}\n")
    assert small.auth is not None and small.auth.max_runs_per_caller == 10  # gives way
    with pytest.raises(DockfileError, match="max_runs_per_caller"):
        parse_dockspec(
            base + "auth: {max_runs_per_caller: 100}\nstreaming: {memory: {max_runs: 100}}\n"
        )
    with pytest.raises(DockfileError, match=r"roles\[batch\]\.max_runs"):
        parse_dockspec(
            base + "auth:\n  roles: [{name: batch, permissions: [invoke], max_runs: 20000}]\n"
        )

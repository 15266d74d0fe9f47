"""Runtime processes past one machine's Redis: `streaming.redis.cluster` on a real
three-master Redis Cluster."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import parse_sse

from .conftest import kill_server, start_server, write_project


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill_server(process)


def launch(dockfile: Path, servers: list[subprocess.Popen[bytes]]) -> str:
    process, url = start_server(dockfile)
    servers.append(process)
    return url


def test_three_instances_on_a_redis_cluster(
    tmp_path: Path, redis_cluster: Any, servers: list[subprocess.Popen[bytes]]
) -> None:
    """Created on A, streamed from B, cancelled from C, replayed from the middle on A."""
    dockfile = write_project(
        tmp_path,
        "endless_marker",
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_cluster.url}', cluster: true, lease_seconds: 2, "
        f"key_prefix: c{uuid.uuid4().hex[:8]}}}\n",
    )
    a, b, c = (launch(dockfile, servers) for _ in range(3))
    marker = tmp_path / "stopped"
    run_id = httpx.post(f"{a}/runs", json={"query": "x", "marker": str(marker)}).json()["run_id"]
    with httpx.stream("GET", f"{b}/runs/{run_id}/events", timeout=60) as response:
        chunks = response.iter_bytes()
        seen = b""
        while seen.count(b"event: token") < 3:
            seen += next(chunks)
        cancelled = httpx.delete(f"{c}/runs/{run_id}", params={"reason": "from C"})
        assert cancelled.json() == {"run_id": run_id, "status": "CANCELLED"}
        messages = list(parse_sse(seen + b"".join(chunks)))
    assert [m.id for m in messages] == [str(i) for i in range(len(messages))]
    assert messages[-1].event == "cancelled" and messages[-1].json()["reason"] == "from C"
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the agent on A never stopped"
        time.sleep(0.05)
    with httpx.stream(
        "GET", f"{a}/runs/{run_id}/events", params={"from_sequence": 2}, timeout=60
    ) as response:
        replay = list(parse_sse(b"".join(response.iter_bytes())))
    assert [(m.id, m.data) for m in replay] == [(m.id, m.data) for m in messages[2:]]

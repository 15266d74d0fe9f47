"""Several runtime processes sharing runs through a real redis-server on loopback."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import SseMessage, SseParser, parse_sse

from .conftest import kill_server, launch, write_project


@pytest.fixture
def dockfile(tmp_path: Path, redis_server: Any) -> Path:
    extra = (
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, connection_pool_size: 4, "
        f"key_prefix: t{uuid.uuid4().hex[:8]}}}\n"
    )
    return write_project(tmp_path, "endless_marker", extra)


@pytest.fixture
def servers(dockfile: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill_server(process)


def read_until(url: str, run_id: str, tokens: int) -> list[SseMessage]:
    seen: list[SseMessage] = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        parser = SseParser()
        for chunk in response.iter_bytes():
            seen += parser.feed(chunk)
            if sum(m.event == "token" for m in seen) >= tokens:
                break
    return seen


def test_any_instance_serves_any_run_and_cancel_reaches_the_agent(
    dockfile: Path, servers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    a, b = launch(dockfile, servers), launch(dockfile, servers)
    marker = tmp_path / "stopped"
    run_id = httpx.post(f"{a}/runs", json={"query": "x", "marker": str(marker)}).json()["run_id"]
    seen = read_until(b, run_id, 3)  # events produced on A, read on B
    assert [m.id for m in seen] == [str(i) for i in range(len(seen))]
    assert httpx.get(f"{b}/runs/{run_id}").json()["status"] == "RUNNING"
    cancelled = httpx.delete(f"{b}/runs/{run_id}", params={"reason": "from B"})
    assert cancelled.json() == {"run_id": run_id, "status": "CANCELLED"}
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the agent on A never stopped"
        time.sleep(0.05)
    with httpx.stream("GET", f"{a}/runs/{run_id}/events", timeout=60) as response:
        messages = list(parse_sse(b"".join(response.iter_bytes())))
    assert messages[-1].event == "cancelled" and messages[-1].json()["reason"] == "from B"
    assert sum(m.event in ("complete", "error", "cancelled") for m in messages) == 1
    assert [m.id for m in messages] == [str(i) for i in range(len(messages))]
    assert httpx.get(f"{a}/runs/{run_id}").json()["status"] == "CANCELLED"


def test_a_killed_instance_leaves_an_orphaned_run_not_a_running_one(
    dockfile: Path, servers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    a, b = launch(dockfile, servers), launch(dockfile, servers)
    run_id = httpx.post(f"{a}/runs", json={"query": "x", "marker": str(tmp_path / "m")}).json()[
        "run_id"
    ]
    read_until(b, run_id, 2)
    servers[0].send_signal(signal.SIGKILL)
    servers[0].wait(30)
    with httpx.stream(
        "GET", f"{b}/runs/{run_id}/events", params={"from_sequence": 0}, timeout=120
    ) as response:
        messages = list(parse_sse(b"".join(response.iter_bytes())))
    assert messages[-1].event == "error"
    assert messages[-1].json()["code"] == "RUN_ORPHANED"
    status = httpx.get(f"{b}/runs/{run_id}").json()
    assert status["status"] == "FAILED" and status["error"]["code"] == "RUN_ORPHANED"


def test_redis_connections_do_not_grow_with_subscribers(
    dockfile: Path, servers: list[subprocess.Popen[bytes]], tmp_path: Path, redis_server: Any
) -> None:
    url = launch(dockfile, servers)
    run_id = httpx.post(f"{url}/runs", json={"query": "x", "marker": str(tmp_path / "m")}).json()[
        "run_id"
    ]
    read_until(url, run_id, 1)
    release = threading.Event()
    connected = threading.Semaphore(0)

    def subscriber() -> None:
        with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
            chunks = response.iter_bytes()
            next(chunks)
            connected.release()
            for _ in chunks:
                if release.is_set():
                    break

    threads = [threading.Thread(target=subscriber) for _ in range(30)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert connected.acquire(timeout=60)
    with_30 = redis_server.client_count()
    print(f"redis clients with 30 subscribers: {with_30}")
    release.set()
    for thread in threads:
        thread.join(60)
    httpx.delete(f"{url}/runs/{run_id}")
    # pool (4) + one blocking tail per run + the lease guard's share of the pool; never 30+
    assert with_30 <= 4 + 2, f"{with_30} Redis connections for 30 subscribers"


def test_not_ready_while_redis_is_down(tmp_path: Path) -> None:
    dead = "redis://127.0.0.1:1/0"
    dockfile = write_project(
        tmp_path, "echo", f"streaming:\n  backend: redis\n  redis: {{url: '{dead}'}}\n"
    )
    from dockrion_runtime import create_app

    from .conftest import serve_app

    with serve_app(create_app(dockfile)) as url:
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 503
        assert "redis events backend does not answer" in ready.json()["error"]
        created = httpx.post(f"{url}/runs", json={"query": "x"})
        assert (created.status_code, created.json()["code"]) == (503, "BACKEND_UNAVAILABLE")
        assert httpx.post(f"{url}/invoke", json={"query": "x"}).status_code == 200  # needs no Redis


def test_several_workers_share_runs(
    dockfile: Path, servers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url = launch(dockfile, servers, "--workers", "2")
    run_ids = [
        httpx.post(f"{url}/runs", json={"query": "x", "marker": str(tmp_path / f"m{i}")}).json()[
            "run_id"
        ]
        for i in range(4)
    ]
    for _ in range(3):  # new connections land on either worker; every run is known to both
        for run_id in run_ids:
            with httpx.Client() as client:
                assert client.get(f"{url}/runs/{run_id}").status_code == 200
    for run_id in run_ids:
        assert httpx.delete(f"{url}/runs/{run_id}").status_code == 200

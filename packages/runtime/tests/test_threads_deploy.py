"""Threads on a deployment: two `serve` instances behind nginx (docs/deploy/nginx.conf,
round robin) on Redis and PostgreSQL. A conversation whose turns alternate instances
remembers every turn; both instances restarted, it continues; PostgreSQL restarted
mid-conversation, the next turn works, and so after Redis and nginx restart; the thread's
record holds every turn. Real processes, no mocks."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from .conftest import kill_server, require_nginx, start_server, write_project
from .test_threads import GRAPH, record

pytest.importorskip("langgraph")


def serve_on(dockfile: Path, port: int, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """`dockrion-runtime serve` on `port` (the port nginx sends to), once it is ready."""
    return start_server(dockfile, port=port, environ=environ)[0]


@pytest.fixture
def proxy_dir(tmp_path: Path) -> Iterator[list[Any]]:
    require_nginx()
    owned: list[Any] = []
    yield owned
    for thing in reversed(owned):
        if isinstance(thing, harness.Nginx):
            thing.stop()
        else:
            kill_server(thing)


def test_a_conversation_through_nginx_survives_restarts_of_everything(
    tmp_path: Path, make_redis_server: Any, postgres_server: Any, proxy_dir: list[Any]
) -> None:
    redis_server = make_redis_server(persistent=True)  # its append-only file survives
    redis_server.start()
    extra = (
        "threads: {checkpointer: postgres, url: '${DATABASE_URL}', pool_size: 2}\n"
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', key_prefix: d{uuid.uuid4().hex[:8]}}}\n"
    )
    dockfile = write_project(
        tmp_path, "build", extra, GRAPH, entrypoint=True, framework="langgraph"
    )
    environ = {"DATABASE_URL": postgres_server.url}
    ports = [harness.free_port(), harness.free_port()]
    instances = [serve_on(dockfile, port, environ) for port in ports]
    proxy_dir.extend(instances)
    proxy = harness.Nginx(tmp_path / "nginx", [f"127.0.0.1:{port}" for port in ports])
    proxy_dir.append(proxy)
    proxy.start()
    seen: list[str] = []
    said: list[str] = []

    def say(query: str) -> None:
        said.append(query)
        answer = httpx.post(
            f"{proxy.url}/invoke", json={"query": query}, params={"thread_id": "chat"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        seen.append(f"{query!r} -> {answer.json()['output']['answer']!r}")
        assert answer.json()["output"]["answer"] == " | ".join(said)

    for query in ("my name is Ana", "I like tea", "and jazz", "who am I?"):
        say(query)  # nginx sends them round robin: the turns alternate instances
    seen.append("-- both instances killed (SIGKILL) and started again on their ports --")
    for process in instances:
        kill_server(process)
    instances[:] = [serve_on(dockfile, port, environ) for port in ports]
    proxy_dir.extend(instances)
    say("still me?")
    say("and now?")
    postgres_server.restart()
    seen.append("-- PostgreSQL restarted (pg_ctl stop -m fast; start) --")
    say("after the database restart")
    say("one more")
    redis_server.stop()
    redis_server.start()
    proxy.stop()
    proxy.start()
    seen.append("-- Redis restarted (append-only file kept) and nginx restarted --")
    say("after Redis and nginx")
    say("last one")
    # the thread's record, on the instances' shared Redis, holds every turn
    runs = httpx.get(f"{proxy.url}/threads/chat/runs", params={"limit": 100}).json()["runs"]
    assert [r["input"]["query"] for r in runs][::-1] == said
    seen.append(f"GET /threads/chat/runs: {len(runs)} runs, all COMPLETED via /invoke")
    assert {(r["via"], r["status"]) for r in runs} == {("invoke", "COMPLETED")}
    record("nginx-two-instances-restarts", seen)

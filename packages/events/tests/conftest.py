"""Fixtures: a fresh event loop per test, and every backend under test.

The Redis backend runs against a real `redis-server` started on a free loopback port for
the session (never a fake). Under CI a missing redis-server fails the run instead of
skipping, so the Redis tests always execute there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockrion_events import EventBackend, InMemoryBackend

BACKENDS = ["memory", "redis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real redis-server on loopback, owned by the test session."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def created_backends() -> list[EventBackend]:
    return []


@pytest.fixture(params=BACKENDS)
def make_backend(
    request: pytest.FixtureRequest, created_backends: list[EventBackend]
) -> Callable[..., EventBackend]:
    """`make_backend(max_events_per_run=..., ttl_seconds=...)` for the backend under test;
    call it inside the test's event loop."""
    kind = request.param

    def make(**options: Any) -> EventBackend:
        backend: EventBackend
        if kind == "memory":
            backend = InMemoryBackend(**options)
        else:
            from dockrion_events.backends.redis import RedisBackend

            server = request.getfixturevalue("redis_server")
            ttl = options.pop("ttl_seconds", 3600)
            backend = RedisBackend(
                server.url,
                stream_ttl_seconds=max(1, int(ttl)),
                key_prefix=f"test-{uuid.uuid4().hex[:8]}",
                block_ms=200,
                **options,
            )
        created_backends.append(backend)
        return backend

    make.kind = kind  # type: ignore[attr-defined]
    return make


@pytest.fixture
def run_async(created_backends: list[EventBackend]) -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine on a fresh event loop; backends made during it are closed in it."""

    def runner(awaitable: Awaitable[Any]) -> Any:
        async def main() -> Any:
            try:
                return await awaitable
            finally:
                for backend in created_backends:
                    await backend.close()
                created_backends.clear()

        return asyncio.run(main())

    return runner

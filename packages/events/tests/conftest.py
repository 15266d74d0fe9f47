"""Fixtures: a fresh event loop per test, and every backend under test (the real
`redis_server` fixture comes from the workspace's root conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dockrion_events import EventBackend, InMemoryBackend

# "redis-cluster": the Redis backend on a real three-master Redis Cluster.
BACKENDS = ["memory", "redis", "redis-cluster"]


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

            cluster = kind == "redis-cluster"
            server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
            ttl = options.pop("ttl_seconds", 3600)
            backend = RedisBackend(
                server.url,
                stream_ttl_seconds=max(1, int(ttl)),
                key_prefix=f"test-{uuid.uuid4().hex[:8]}",
                block_ms=200,
                cluster=cluster,
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

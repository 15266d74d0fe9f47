"""Usage per owner and day in both backends: added up atomically, read per owner or for
every owner, days kept apart (Redis: a real redis-server, two backends sharing it)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from dockrion_events import InMemoryBackend


async def _exercise(first: Any, second: Any) -> None:
    await asyncio.gather(
        *[
            first.add_usage("alice", "2026-01-02", {"input_tokens": 3, "cost": 0.25, "runs": 1})
            for _ in range(10)
        ],
        *[
            second.add_usage("alice", "2026-01-02", {"output_tokens": 2, "runs": 1})
            for _ in range(10)
        ],
    )
    await second.add_usage("bob", "2026-01-02", {"input_tokens": 1, "runs": 1})
    await first.add_usage("alice", "2026-01-03", {"input_tokens": 7, "runs": 1})
    alice = {"input_tokens": 30.0, "output_tokens": 20.0, "cost": 2.5, "runs": 20.0}
    assert await first.read_usage("2026-01-02", "alice") == {"alice": alice}
    assert await second.read_usage("2026-01-02", "alice") == {"alice": alice}
    everyone = await second.read_usage("2026-01-02")
    assert everyone == {
        "alice": alice,
        "bob": {"input_tokens": 1.0, "output_tokens": 0.0, "cost": 0.0, "runs": 1.0},
    }
    assert (await first.read_usage("2026-01-03", "alice"))["alice"]["input_tokens"] == 7
    assert await first.read_usage("2026-01-04", "alice") == {}


def test_memory_backend_keeps_usage_per_owner_and_day() -> None:
    backend = InMemoryBackend()
    asyncio.run(_exercise(backend, backend))


def test_redis_backends_share_usage(redis_server: Any) -> None:
    from dockrion_events.backends.redis import RedisBackend

    prefix = f"usage-{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        first = RedisBackend(redis_server.url, key_prefix=prefix)
        second = RedisBackend(redis_server.url, key_prefix=prefix)
        try:
            await _exercise(first, second)
        finally:
            await first.close()
            await second.close()

    asyncio.run(run())

"""Redis lost mid-run and back: producers buffer and retry, subscribers get a clear error
and resume, nothing is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from dockrion_events import BackendConnectionError, EventBus, RunManager


def test_producer_buffers_through_an_outage_and_nothing_is_lost(
    make_redis_server: Callable[..., Any],
) -> None:
    from dockrion_events.backends.redis import RedisBackend

    server = make_redis_server(persistent=True)
    server.start()

    async def scenario() -> list[int]:
        backend = RedisBackend(server.url, block_ms=200)
        runs = RunManager(EventBus(backend))
        try:
            run = await runs.create_run()
            await runs.start_run(run.run_id)
            context = runs.get_context(run.run_id)
            assert context is not None
            for i in range(10):
                await context.emit_token(f"before {i}")
            server.stop()  # Redis goes away mid-run
            # the agent keeps emitting: nothing raises, events wait in the bounded buffer
            await asyncio.to_thread(
                lambda: [context.sync_emit_token(f"during {i}") for i in range(10)]
            )
            with pytest.raises(BackendConnectionError, match="unreachable"):
                await runs.bus.replay(run.run_id)  # a subscriber gets a clear error
            server.start()  # back, with its data (append-only file)
            await runs.set_result(run.run_id, {"done": True})  # flushes the buffer first
            records: list[Any] = []
            async for batch in runs.bus.subscribe(run.run_id, 0):
                records.extend(batch)
            return [r.sequence for r in records], [r.type for r in records]  # type: ignore[return-value]
        finally:
            await runs.close()
            await backend.close()

    sequences, types = asyncio.run(scenario())
    assert sequences == list(range(22))  # started, 10 before, 10 during, complete
    assert types[0] == "started" and types[-1] == "complete"

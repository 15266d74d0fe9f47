"""Several instances that start at once on a fresh PostgreSQL database all create (or find)
the checkpointer's tables: the setup is serialised by an advisory lock, where concurrent
`CREATE TABLE IF NOT EXISTS` and migration inserts can fail with a duplicate key. Real
PostgreSQL; no mocks."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from dockrion_runtime.agents.checkpointers import open_checkpointer
from dockrion_schema import DockSpec

pytest.importorskip("langgraph.checkpoint.postgres")


def test_instances_starting_at_once_on_a_fresh_database_all_start(
    postgres_server: Any, tmp_path: Path
) -> None:
    spec = DockSpec.model_validate(
        {
            "version": "1.0",
            "agent": {"name": "a", "handler": "m:f"},
            "io_schema": {},
            "expose": {},
            "threads": {"checkpointer": "postgres", "url": postgres_server.url, "pool_size": 1},
        }
    )
    assert spec.threads is not None
    config = spec.threads

    async def scenario() -> list[Any]:
        async with contextlib.AsyncExitStack() as stack:
            opened = await asyncio.gather(
                *(open_checkpointer(config, tmp_path, stack) for _ in range(6)),
                return_exceptions=True,
            )
            return [type(item).__name__ for item in opened]

    names = asyncio.run(scenario())
    assert names == ["AsyncPostgresSaver"] * 6, names

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
def run_async() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine on a fresh event loop (each test gets its own)."""

    def runner(awaitable: Awaitable[Any]) -> Any:
        async def main() -> Any:
            return await awaitable

        return asyncio.run(main())

    return runner

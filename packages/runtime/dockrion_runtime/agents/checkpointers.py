"""The checkpointer the runtime gives a LangGraph graph compiled without one
(`threads.checkpointer`): in memory, in a SQLite file, or in PostgreSQL through a pool of
connections, each checked before it is used so that a restarted PostgreSQL costs no run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from dockrion_schema import ThreadsConfig

from .base import AgentLoadError

__all__ = ["open_checkpointer"]

# How long start-up waits for PostgreSQL to hand out the pool's first connection.
POSTGRES_CONNECT_SECONDS = 30.0


def _extra(name: str, error: ImportError) -> AgentLoadError:
    return AgentLoadError(
        f"threads.checkpointer {name} needs the {name} extra: "
        f"pip install 'dockrion-runtime[{name}]' ({error})"
    )


async def open_checkpointer(
    config: ThreadsConfig, base_dir: Path, stack: contextlib.AsyncExitStack
) -> Any:
    """A LangGraph checkpointer for `config`, its tables created; `stack` closes it."""
    if config.checkpointer == "sqlite":
        return await _sqlite(base_dir / str(config.path), stack)
    if config.checkpointer == "postgres":
        return await _postgres(str(config.url), config.pool_size, stack)
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()


async def _sqlite(path: Path, stack: contextlib.AsyncExitStack) -> Any:
    try:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    except ImportError as exc:
        raise _extra("sqlite", exc) from None
    try:
        connection = await aiosqlite.connect(str(path))
    except Exception as exc:
        raise AgentLoadError(f"threads.path {str(path)!r} cannot be opened: {exc}") from None
    stack.push_async_callback(connection.close)
    saver = AsyncSqliteSaver(connection)
    await saver.setup()
    return saver


async def _postgres(url: str, pool_size: int, stack: contextlib.AsyncExitStack) -> Any:
    if "${" in url:
        raise AgentLoadError(
            f"threads.url is {url!r}: set the variable (or write the URL) so the runtime "
            "knows where PostgreSQL is"
        )
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        raise _extra("postgres", exc) from None
    pool: Any = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        open=False,
        # a connection that died with its server (a restart) is replaced, never handed out
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    try:
        await pool.open(wait=True, timeout=POSTGRES_CONNECT_SECONDS)
    except Exception as exc:
        await pool.close()
        raise AgentLoadError(f"PostgreSQL (threads.url) does not answer: {exc}") from None
    stack.push_async_callback(pool.close)
    saver = AsyncPostgresSaver(pool)
    await saver.setup()
    return saver

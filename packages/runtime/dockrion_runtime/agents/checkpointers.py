"""The checkpointer the runtime gives a LangGraph graph compiled without one
(`threads.checkpointer`): in memory, in a SQLite file, or in PostgreSQL through a pool of
connections, each checked before it is used so that a restarted PostgreSQL costs no run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from dockrion_schema import ThreadsConfig

from .base import AgentLoadError

__all__ = ["delete_checkpoints_since", "open_checkpointer", "threads_older_than"]

# The start of UUID time (1582-10-15) in 100-ns intervals before the Unix epoch.
_UUID_EPOCH = 0x01B21DD213814000

# How long start-up waits for PostgreSQL to hand out the pool's first connection.
POSTGRES_CONNECT_SECONDS = 30.0


def _extra(name: str, error: ImportError) -> AgentLoadError:
    return AgentLoadError(
        f"threads.checkpointer {name} needs the {name} extra: "
        f"pip install 'dockrion-runtime[{name}]' ({error})"
    )


# The advisory lock that serialises the checkpointer's table set-up (any constant shared
# by every instance: the digits spell "dockrion" in ASCII, as a big-endian integer).
_SETUP_LOCK = int.from_bytes(b"dockrion", "big") & 0x7FFF_FFFF_FFFF_FFFF
# How long an instance waits for another one's set-up of the tables before giving up.
POSTGRES_SETUP_SECONDS = 120


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
    # Instances that start at once on a fresh database would run LangGraph's migrations
    # together, and all but one fail on a duplicate key: one at a time, under an advisory
    # lock held on a connection of its own (the pool may have one connection only). The
    # others poll for it idle: a session waiting inside pg_advisory_lock() would hold a
    # snapshot that the migrations' CREATE INDEX CONCURRENTLY waits for, for ever.
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as lock:
        deadline = time.monotonic() + POSTGRES_SETUP_SECONDS
        while not await _try_lock(lock):
            if time.monotonic() > deadline:
                raise AgentLoadError(
                    "PostgreSQL (threads.url): another instance held the checkpointer's "
                    f"set-up for {POSTGRES_SETUP_SECONDS} s"
                )
            await asyncio.sleep(0.1)
        try:
            await saver.setup()
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
    return saver


async def _try_lock(connection: Any) -> bool:
    row = await (
        await connection.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,))
    ).fetchone()
    return bool(row and row[0])


def _written_at(checkpoint_id: str) -> float:
    """When a checkpoint was written (Unix seconds): LangGraph's checkpoint ids are
    time-ordered UUIDs (version 6) that carry it."""
    from langgraph.checkpoint.base.id import UUID as CheckpointId

    return float(CheckpointId(checkpoint_id).time - _UUID_EPOCH) / 1e7


async def threads_older_than(checkpointer: Any, cutoff: float) -> list[str] | None:
    """The threads whose latest checkpoint was written before `cutoff` (Unix seconds),
    from the checkpointer's own storage; None for a checkpointer the runtime did not open
    (it cannot tell)."""
    latest: dict[str, str] = {}
    kind = type(checkpointer).__name__
    if kind == "InMemorySaver":
        for thread_id, spaces in list(checkpointer.storage.items()):
            ids = [cid for checkpoints in spaces.values() for cid in checkpoints]
            if ids:
                latest[str(thread_id)] = max(ids)
    elif kind == "AsyncSqliteSaver":
        query = "SELECT thread_id, MAX(checkpoint_id) FROM checkpoints GROUP BY thread_id"
        async with checkpointer.conn.execute(query) as cursor:
            latest = {str(row[0]): str(row[1]) for row in await cursor.fetchall()}
    elif kind == "AsyncPostgresSaver":
        query = "SELECT thread_id, MAX(checkpoint_id) AS latest FROM checkpoints GROUP BY thread_id"
        async with checkpointer.conn.connection() as connection:
            cursor = await connection.execute(query)
            latest = {str(row["thread_id"]): str(row["latest"]) for row in await cursor.fetchall()}
    else:
        return None
    return [thread for thread, newest in latest.items() if _written_at(newest) < cutoff]


async def delete_checkpoints_since(checkpointer: Any, thread_id: str, since: float) -> bool:
    """Remove what the thread's checkpointer stored at or after `since` (Unix seconds): the
    checkpoints, the pending writes made from them, and the channel values (blobs) no
    checkpoint left refers to; False for a checkpointer of a kind the runtime cannot edit.
    Called while the thread's turn is held, so no run writes to the thread meanwhile."""
    kind = type(checkpointer).__name__
    if kind == "InMemorySaver":
        _delete_in_memory(checkpointer, thread_id, since)
        return True
    if kind == "AsyncSqliteSaver":
        async with checkpointer.lock:
            for table in ("checkpoints", "writes"):
                query = f"SELECT DISTINCT checkpoint_id FROM {table} WHERE thread_id = ?"  # noqa: S608 - fixed names
                async with checkpointer.conn.execute(query, (thread_id,)) as cursor:
                    ids = [str(row[0]) for row in await cursor.fetchall()]
                await checkpointer.conn.executemany(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id = ?",  # noqa: S608 - fixed names
                    [(thread_id, c) for c in ids if _written_at(c) >= since],
                )
            await checkpointer.conn.commit()
        return True
    if kind == "AsyncPostgresSaver":
        async with checkpointer.conn.connection() as connection, connection.transaction():
            for table in ("checkpoints", "checkpoint_writes"):
                cursor = await connection.execute(
                    f"SELECT DISTINCT checkpoint_id FROM {table} WHERE thread_id = %s",  # noqa: S608 - fixed names
                    (thread_id,),
                )
                ids = [str(row["checkpoint_id"]) for row in await cursor.fetchall()]
                await connection.execute(
                    f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_id = ANY(%s)",  # noqa: S608 - fixed names
                    (thread_id, [c for c in ids if _written_at(c) >= since]),
                )
            await _delete_unused_blobs(connection, thread_id)
        return True
    return False


async def _delete_unused_blobs(connection: Any, thread_id: str) -> None:
    """PostgreSQL keeps each channel value once (`checkpoint_blobs`, by channel and version)
    for the checkpoints that refer to it: delete the thread's values none refers to."""
    cursor = await connection.execute(
        "SELECT DISTINCT c.checkpoint_ns, v.key AS channel, v.value AS version "
        "FROM checkpoints c "
        "CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v "
        "WHERE c.thread_id = %s",
        (thread_id,),
    )
    used = {(r["checkpoint_ns"], r["channel"], r["version"]) for r in await cursor.fetchall()}
    cursor = await connection.execute(
        "SELECT checkpoint_ns, channel, version FROM checkpoint_blobs WHERE thread_id = %s",
        (thread_id,),
    )
    stored = {(r["checkpoint_ns"], r["channel"], r["version"]) for r in await cursor.fetchall()}
    async with connection.cursor() as deleting:
        await deleting.executemany(
            "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = %s "
            "AND channel = %s AND version = %s",
            [(thread_id, *key) for key in sorted(stored - used)],
        )


def _delete_in_memory(saver: Any, thread_id: str, since: float) -> None:
    """The same for LangGraph's InMemorySaver: checkpoints by namespace, writes by
    (thread, namespace, checkpoint), channel values by (thread, namespace, channel,
    version)."""
    used: set[tuple[Any, ...]] = set()
    for namespace, checkpoints in saver.storage.get(thread_id, {}).items():
        for checkpoint_id in [c for c in checkpoints if _written_at(c) >= since]:
            del checkpoints[checkpoint_id]
        for saved, _, _ in checkpoints.values():
            versions = saver.serde.loads_typed(saved).get("channel_versions", {})
            used.update((thread_id, namespace, ch, ver) for ch, ver in versions.items())
    for key in [k for k in saver.writes if k[0] == thread_id]:
        if _written_at(key[2]) >= since:
            del saver.writes[key]
    for key in [k for k in saver.blobs if k[0] == thread_id and k not in used]:
        del saver.blobs[key]

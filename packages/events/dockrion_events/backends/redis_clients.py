"""The Redis connections of a `RedisBackend` (one server, a cluster, or a primary found
through Redis Sentinel) and the translation of redis-py's errors into the event layer's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import BackendConnectionError, BackendError

__all__ = ["Connections", "SentinelService", "connect", "redis_errors", "safe_url"]


# Set while a task holds one of a cluster client's slots (commands it issues meanwhile, such
# as a pipeline's retries after a redirection, use that slot instead of waiting for another).
_holding_slot: ContextVar[bool] = ContextVar("holding_slot", default=False)


class _ClusterClient(RedisCluster):
    """redis-py's cluster client, with two fixes:

    - each command waits for the client's initialization (discovering the nodes): with
      redis-py 8.1, commands that start together on a client not yet initialized can fail
      with an AttributeError from a connection without its stream;
    - a command waits for a free connection instead of failing with `MaxConnectionsError`
      when more commands than a node's `max_connections` are under way at once (a hundred
      subscribers joining a run together), as the pool for one server does. At most
      `max_connections` commands or pipelines run at once, each using at most one
      connection per node.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(int(kwargs.get("max_connections", 100)))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if _holding_slot.get():
            yield
            return
        async with self._slots:
            token = _holding_slot.set(True)
            try:
                yield
            finally:
                _holding_slot.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        async with self.slot():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


class _ClusterPipeline(ClusterPipeline):
    """A cluster pipeline that runs in one of its client's slots."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client = self.cluster_client
        assert isinstance(client, _ClusterClient)
        async with client.slot():
            return await super().execute(raise_on_error, allow_redirections)


@dataclass(frozen=True, slots=True)
class SentinelService:
    """A primary found through Redis Sentinel: its name as the Sentinels know it, their
    `(host, port)` addresses, and the password of the primary and its replicas."""

    service_name: str
    sentinels: tuple[tuple[str, int], ...]
    password: str | None = None

    @property
    def url(self) -> str:
        """A description for messages (not a URL redis-py reads)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service_name}"


class _SentinelBlockingPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (connections go to the primary the Sentinels name, and to the new one
    after a failover) that waits for a free connection instead of failing, like the pool
    used for one server."""


@dataclass(slots=True)
class Connections:
    """`client` for commands; `blocking` for blocking reads, which hold their connection;
    `pool`, the command pool to disconnect on close (one server only). redis-py types replies
    as unions over protocol versions; we read RESP2 replies and convert them where they are
    used, so the clients are typed loosely on purpose."""

    client: Any
    blocking: Any
    pool: Any = None
    sentinel: Any = None

    async def close(self) -> None:
        await self.client.aclose()
        if self.pool is not None:
            await self.pool.disconnect()
        await self.blocking.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


def connect(
    url: str, pool_size: int, cluster: bool, sentinel: SentinelService | None = None
) -> Connections:
    if sentinel is not None:
        # Each new connection asks the Sentinels where the primary is; a connection to a
        # demoted primary (READONLY) is dropped, so commands fail over with the Sentinels.
        manager = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(sentinel.sentinels),
            sentinel_kwargs={"socket_timeout": 5, "socket_connect_timeout": 5},
            password=sentinel.password,
        )
        return Connections(
            manager.master_for(
                sentinel.service_name,
                connection_pool_class=_SentinelBlockingPool,
                max_connections=pool_size,
                timeout=10,
            ),
            manager.master_for(sentinel.service_name),
            sentinel=manager,
        )
    if cluster:
        # Blocking reads get a client of their own: one connection per tailed run on the
        # node holding the run.
        return Connections(
            _ClusterClient.from_url(url, max_connections=max(pool_size, 100)),
            _ClusterClient.from_url(url, max_connections=2**31),
        )
    # A blocking pool: when every connection is busy, a command waits for one (up to 10 s)
    # instead of failing, so the pool size bounds connections, not throughput.
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=10)
    return Connections(aioredis.Redis(connection_pool=pool), aioredis.Redis.from_url(url), pool)


def safe_url(url: str) -> str:
    """The URL without a password that may sit in it."""
    head, _, tail = url.rpartition("@")
    return f"{head.split('://')[0]}://***@{tail}" if head else url


@contextlib.contextmanager
def redis_errors(url: str, doing: str, backend: str = "redis") -> Iterator[None]:
    """redis-py's errors as `BackendConnectionError` (Redis away) or `BackendError`."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as exc:
        raise BackendConnectionError(
            f"Redis at {safe_url(url)} is unreachable while {doing}: {exc}", backend
        ) from exc
    except RedisError as exc:
        raise BackendError(f"Redis error while {doing}: {exc}", backend) from exc

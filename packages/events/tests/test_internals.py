"""The redis-py internals the Redis backend relies on, each checked in the shape it is used in.

None of these is public API: a release may move or change one without notice. redis has an
upper bound in pyproject.toml (the `redis` extra) naming them; before raising it, these
tests must pass on the new release. They run on the lowest declared versions too
(`python3 tools/release_smoke.py --floors`), so they need no server, no fixture and no
conftest. A failure names the internal and what of ours uses it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

pytest.importorskip("redis")

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from dockrion_events.backends.redis_clients import (
    _ClusterClient,
    _ClusterPipeline,
    _SentinelBlockingPool,
)


def broken(internal: str, user: str) -> str:
    return f"{internal} changed: {user} relies on it (see packages/events/pyproject.toml)"


def test_a_cluster_client_says_whether_it_still_has_to_discover_its_nodes() -> None:
    internal = "redis.asyncio.RedisCluster._initialize (True until initialize() ran)"
    user = "redis_clients._ClusterClient.execute_command (waits for the discovery)"

    async def scenario() -> Any:
        client = _ClusterClient(host="127.0.0.1", port=1)  # not connected: no server needed
        try:
            return getattr(client, "_initialize", None)
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) is True, broken(internal, user)
    assert inspect.iscoroutinefunction(aioredis.RedisCluster.initialize), broken(internal, user)


def test_a_cluster_pipeline_is_built_from_its_client_and_knows_it() -> None:
    internal = (
        "redis.asyncio.cluster.ClusterPipeline(client, transaction), .cluster_client, "
        "execute(raise_on_error, allow_redirections)"
    )
    user = "redis_clients._ClusterPipeline (runs in one of its client's slots)"

    async def scenario() -> tuple[Any, Any, Any]:
        client = _ClusterClient(host="127.0.0.1", port=1)
        try:
            pipeline = client.pipeline()
            return client, pipeline, getattr(pipeline, "cluster_client", None)
        finally:
            await client.aclose()

    client, pipeline, known = asyncio.run(scenario())
    assert isinstance(pipeline, _ClusterPipeline) and known is client, broken(internal, user)
    parameters = list(inspect.signature(ClusterPipeline.__init__).parameters)
    assert parameters[:3] == ["self", "client", "transaction"], broken(internal, user)
    parameters = list(inspect.signature(ClusterPipeline.execute).parameters)
    assert parameters[:3] == ["self", "raise_on_error", "allow_redirections"], broken(
        internal, user
    )


def test_sentinels_pool_and_the_blocking_pool_combine() -> None:
    internal = (
        "SentinelConnectionPool(service_name, sentinel_manager, **kwargs) passing the rest to "
        "BlockingConnectionPool (max_connections, timeout), whose get_connection waits"
    )
    user = "redis_clients._SentinelBlockingPool (Sentinel's primary, a waiting pool)"

    async def scenario() -> Any:
        manager = Sentinel([("127.0.0.1", 1)])  # type: ignore[no-untyped-call,unused-ignore]
        client = manager.master_for(
            "primary", connection_pool_class=_SentinelBlockingPool, max_connections=3, timeout=7
        )
        try:
            return client.connection_pool
        finally:
            await client.aclose()
            await manager.aclose()  # Connections.close closes the Sentinels' clients too

    pool = asyncio.run(scenario())
    assert isinstance(pool, SentinelConnectionPool), broken(internal, user)
    assert isinstance(pool, aioredis.BlockingConnectionPool), broken(internal, user)
    assert (pool.service_name, pool.max_connections, pool.timeout) == ("primary", 3, 7), broken(
        internal, user
    )
    waits = aioredis.BlockingConnectionPool.get_connection
    assert _SentinelBlockingPool.get_connection is waits, broken(internal, user)

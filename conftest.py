"""Fixtures shared by every package's tests.

`redis_server`: a real `redis-server` on a free loopback port for the test session (never a
fake); `redis_cluster`: a real three-master Redis Cluster on loopback for the session;
`redis_sentinels`: a real primary, replica and three Sentinels for one test (a failover
changes them); `postgres_server`: a real PostgreSQL (Debian's `postgresql` package) for one
test, in a temporary folder on a free port. Under CI a missing redis-server, redis-cli,
redis-sentinel or PostgreSQL fails the run instead of skipping, so those tests always
execute there.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import PostgresServer, RedisCluster, RedisSentinels, RedisServer, postgres_binaries


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
def make_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Fresh redis-server instances for tests that stop and restart Redis."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed")
    servers: list[RedisServer] = []

    def make(*, persistent: bool = False) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory, persistent=persistent)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server/redis-cli are not installed; .ci/run must install them")
        pytest.skip("redis-server or redis-cli is not installed")
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinels(tmp_path: Path) -> Iterator[RedisSentinels]:
    if any(shutil.which(tool) is None for tool in ("redis-server", "redis-cli", "redis-sentinel")):
        if os.environ.get("CI"):
            pytest.fail("redis-server/redis-cli/redis-sentinel missing; .ci/run installs them")
        pytest.skip("redis-server, redis-cli or redis-sentinel is not installed")
    # A password on the primary and replica, as in production (a throwaway one per test).
    # Six processes on ports picked free beforehand: if one was taken meanwhile, the group
    # never gets ready; it is started again once, on new ports (the error names the logs).
    for attempt in (1, 2):
        directory = tmp_path / f"redis-sentinels-{attempt}"
        directory.mkdir()
        sentinels = RedisSentinels(directory, password=secrets.token_hex(8))
        try:
            sentinels.start()
            break
        except RuntimeError:
            sentinels.stop()
            if attempt == 2:
                raise
    try:
        yield sentinels
    finally:
        sentinels.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    if postgres_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed; .ci/run must install it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()

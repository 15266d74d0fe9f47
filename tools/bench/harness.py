"""What the benchmarks and the test fixtures share: free loopback ports; real, throwaway
redis-server processes, alone, as a cluster, or as a primary with a replica watched by
Sentinels; nginx running the documented configuration (tests import this module through
pytest's `pythonpath`)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "NGINX_CONF",
    "Nginx",
    "PostgresServer",
    "RedisCluster",
    "RedisSentinels",
    "RedisServer",
    "free_port",
    "nginx_binary",
    "postgres_binaries",
    "redis_server",
]

NGINX_CONF = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """A real redis-server on loopback, owned by whoever started it (a test session or
    a benchmark run); `persistent` keeps an append-only file that survives a restart;
    `extra` arguments are appended to the command line (e.g. cluster mode)."""

    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = False,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persistent = persistent  # an append-only file survives a restart
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client_count(self) -> int:
        """Connected clients, from CLIENT LIST (minus the connection asking)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"CLIENT LIST\r\n")
            data = b""
            while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.count(b"id=") - 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


class RedisCluster:
    """A real Redis Cluster of `masters` redis-server processes on loopback (no replicas),
    created with `redis-cli --cluster create`; `url` names one node (clients discover the
    rest)."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        for index in range(masters):
            node_dir = directory / f"node-{index}"
            node_dir.mkdir()
            self.nodes.append(
                RedisServer(
                    node_dir,
                    port=free_cluster_port(),
                    extra=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
                )
            )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        assert cli is not None
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                for node in self.nodes
            ]
            if all("cluster_state:ok" in state for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not come up")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A redis-server on a free loopback port for the duration, or None if not installed."""
    if shutil.which("redis-server") is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _cli(port: int, *args: str, password: str | None = None) -> str:
    cli = shutil.which("redis-cli")
    assert cli is not None
    auth = ["-a", password, "--no-auth-warning"] if password else []
    return subprocess.run(
        [cli, "-p", str(port), *auth, *args], capture_output=True, text=True, timeout=10
    ).stdout


class RedisSentinels:
    """A real primary and replica watched by three real Sentinels (`redis-sentinel`), all on
    loopback, with timeouts low enough that a failover takes a few seconds: a primary is
    judged down after `down_after_ms` without an answer. `password`, when given, guards
    the primary and the replica (the Sentinels are open)."""

    SERVICE = "mymaster"

    def __init__(
        self, directory: Path, *, password: str | None = None, down_after_ms: int = 1500
    ) -> None:
        self.directory = directory
        self.password = password
        self.down_after_ms = down_after_ms
        # A replica's first sync starts at once (not after the default 5 s diskless delay).
        options: tuple[str, ...] = ("--repl-diskless-sync-delay", "0")
        if password:
            options += ("--requirepass", password, "--masterauth", password)
        primary_dir, replica_dir = directory / "primary", directory / "replica"
        primary_dir.mkdir()
        replica_dir.mkdir()
        self.primary = RedisServer(primary_dir, extra=options)
        self.replica = RedisServer(
            replica_dir, extra=(*options, "--replicaof", "127.0.0.1", str(self.primary.port))
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        self._wait(lambda: "master_link_status:up" in self._info(self.replica.port), "replica")
        binary = shutil.which("redis-sentinel")
        assert binary is not None
        # Each Sentinel is told of the replica and of the others up front (what it would
        # otherwise learn within seconds from the primary and from their hello messages).
        ids = {port: f"{port:040x}" for port in self.sentinel_ports}
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"
            lines = [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self.directory}",
                f"sentinel myid {ids[port]}",
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2",
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}",
                f"sentinel failover-timeout {self.SERVICE} 6000",
                f"sentinel known-replica {self.SERVICE} 127.0.0.1 {self.replica.port}",
                *(
                    f"sentinel known-sentinel {self.SERVICE} 127.0.0.1 {other} {ids[other]}"
                    for other in self.sentinel_ports
                    if other != port
                ),
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {self.SERVICE} {self.password}")
            config.write_text("\n".join(lines) + "\n")  # Sentinel rewrites it: its own file
            self.sentinels.append(
                subprocess.Popen(
                    [
                        binary,
                        str(config),
                        "--logfile",
                        str(self.directory / f"sentinel-{port}.log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        # Ready when every Sentinel knows the replica and the two other Sentinels.
        self._wait(
            lambda: all(
                "num-slaves\n1\n" in state and "num-other-sentinels\n2\n" in state
                for state in (
                    _cli(port, "sentinel", "master", self.SERVICE) for port in self.sentinel_ports
                )
            ),
            "Sentinels",
        )

    def _info(self, port: int) -> str:
        return _cli(port, "info", "replication", password=self.password)

    def _wait(self, ready: Callable[[], bool], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} not ready within {seconds:g}s")

    def _named(self, sentinel_port: int) -> int | None:
        reply = _cli(sentinel_port, "sentinel", "get-master-addr-by-name", self.SERVICE).split()
        return int(reply[1]) if len(reply) == 2 else None

    def primary_port(self) -> int:
        """The primary's port according to the first Sentinel."""
        port = self._named(self.sentinel_ports[0])
        assert port is not None
        return port

    def synced(self) -> None:
        """Wait until the replica holds every write the primary has taken so far: one more
        write and `WAIT` for it on the same connection (replication is in order)."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        self._wait(
            lambda: (
                subprocess.run(
                    [cli, "-p", str(self.primary_port()), *auth],
                    input="SET harness:synced 1\nWAIT 1 2000\n",
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.split()[-1:]
                == ["1"]
            ),
            "WAIT",
        )

    def kill_primary(self) -> int:
        """SIGKILL the primary; the port it had."""
        port = self.primary_port()
        server = self.primary if port == self.primary.port else self.replica
        assert server.process is not None
        server.process.kill()
        server.process.wait(30)
        return port

    def wait_for_failover(self, old_port: int) -> int:
        """Wait until every Sentinel names a new primary that accepts writes; its port."""

        def promoted() -> bool:
            named = {self._named(port) for port in self.sentinel_ports}
            if len(named) != 1 or old_port in named or None in named:
                return False
            port = named.pop()
            return port is not None and "role:master" in self._info(port)

        self._wait(promoted, "failover")
        return self.primary_port()

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        self.replica.stop()
        self.primary.stop()


def postgres_binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl), the newest."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts)
    for pg_ctl in reversed(found):
        if (pg_ctl.parent / "initdb").exists():
            return pg_ctl.parent
    return None


class PostgresServer:
    """A real PostgreSQL on loopback in a throwaway folder, owned by whoever started it;
    `restart` stops it (fast: connections are cut) and starts it again on the same port with
    the same data. As root the server runs as the `postgres` user (PostgreSQL refuses root),
    so its folder lives outside root's private temporary folders."""

    USER = "dockrion"

    def __init__(self) -> None:
        binaries = postgres_binaries()
        assert binaries is not None
        self.binaries = binaries
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="dockrion-postgres-"))
        self.data = self.directory / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as, str(self.binaries / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", self.USER, "--auth=trust", "--no-sync")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def query(self, sql: str) -> str:
        """`psql -At -c sql` against the server (the result as text)."""
        psql = shutil.which("psql") or str(self.binaries / "psql")
        done = subprocess.run(
            [
                psql,
                "-At",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.USER,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.strip()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def nginx_binary() -> str | None:
    """nginx on PATH, or Debian's /usr/sbin/nginx (not on a non-root user's PATH)."""
    if found := shutil.which("nginx"):
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


class Nginx:
    """docs/deploy/nginx.conf, as documented, in front of `upstreams` (the `server` lines of
    its upstream block, e.g. `127.0.0.1:8001 max_fails=1 fail_timeout=5s` or
    `127.0.0.1:8002 backup`), listening on a free loopback port. Only what a throwaway
    process needs changes: the ports, `worker_processes` (`workers`), and the pid file,
    logs and temporary files under `directory` (no access log)."""

    DOCUMENTED = (
        "server 127.0.0.1:8081 max_fails=1 fail_timeout=5s;",
        "server 127.0.0.1:8082 max_fails=1 fail_timeout=5s;",
    )

    def __init__(self, directory: Path, upstreams: Sequence[str], *, workers: str = "1") -> None:
        self.directory = directory
        self.upstreams = list(upstreams)
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self) -> str:
        conf = NGINX_CONF.read_text()
        for line in (*self.DOCUMENTED, "listen 8080;", "worker_processes auto;", "http {\n"):
            assert line in conf, f"docs/deploy/nginx.conf no longer has {line!r}"
        first, second = self.DOCUMENTED
        servers = "\n        ".join(f"server {upstream};" for upstream in self.upstreams)
        conf = conf.replace(first, servers).replace(f"        {second}\n", "")
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        conf = conf.replace("worker_processes auto;", f"worker_processes {self.workers};")
        paths = "".join(
            f"    {name}_temp_path {self.directory / name};\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = conf.replace("http {\n", "http {\n" + paths + "    access_log off;\n", 1)
        user = "user root;\n" if os.geteuid() == 0 else ""  # root's workers stay root
        head = f"{user}pid {self.directory / 'nginx.pid'};\n"
        return head + f"error_log {self.directory / 'error.log'};\n" + conf

    def start(self, timeout: float = 20) -> None:
        """Start nginx in the foreground; return once it answers `/health` (proxied)."""
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed"
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)  # before error_log is read
        config = self.directory / "nginx.conf"
        config.write_text(self.render())
        with (self.directory / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.directory), "-c", str(config), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer within {timeout:g}s: {self._log()}")
            time.sleep(0.05)

    def _log(self) -> str:
        logs = (self.directory / name for name in ("stderr.log", "error.log"))
        return "".join(path.read_text(errors="replace") for path in logs if path.exists())

    def worker_pids(self) -> list[int]:
        """The worker processes: children of the master (this process's child)."""
        assert self.process is not None
        pids = []
        for entry in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):  # a process gone meanwhile
                if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.append(int(entry.parent.name))
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # fast shutdown: open connections are closed
            self.process.wait(30)

"""A real uvicorn server on a free loopback port, serving a Dockfile written by the test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest
import uvicorn

from dockrion_runtime import create_app
from dockrion_runtime.serve import http_protocols
from dockrion_runtime.serve.options import ServerOptions
from dockrion_runtime.serve.server import uvicorn_options
from dockrion_schema import ServerLimits

AGENT = """
import asyncio, threading, time
from dockrion_events import StreamContext, get_current_context

release = threading.Event()
stopped = threading.Event()

def echo(payload, context: StreamContext):
    for word in payload["query"].split():
        context.sync_emit_token(word)
        context.sync_emit("note", word=word)
        context.sync_emit_progress("echo", 0.5)
    return {"answer": payload["query"]}

async def aecho(payload, context):
    await context.emit_token("async")
    assert get_current_context() is context
    return {"answer": payload["query"]}

def no_context(payload):
    return {"echo": payload}

def boom(payload):
    raise ValueError("the agent broke")

def wait_for_release(payload, context):
    context.sync_emit_token("waiting")
    release.wait(60)
    return {"released": True}

def endless(payload, context):
    i = 0
    try:
        while i < 50_000_000:
            context.sync_emit_token(str(i))
            i += 1
            time.sleep(0.001)
    finally:
        stopped.set()
    return {}

def not_json(payload):
    return {"value": object()}

def endless_marker(payload, context):
    # emits until stopped, then leaves a file behind: proof across processes
    i = 0
    try:
        while i < 50_000_000:
            context.sync_emit_token(str(i))
            i += 1
            time.sleep(0.005)
    finally:
        open(payload["marker"], "w").close()
    return {}

def slow_tokens(payload, context):
    for i in range(int(payload.get("count", 30))):
        context.sync_emit_token(str(i))
        time.sleep(0.1)
    return {"done": True}

counter = iter(range(1_000_000))

def next_id():
    return f"job-{next(counter)}"
"""


def start_server(
    dockfile: Path,
    *args: str,
    port: int | None = None,
    environ: dict[str, str] | None = None,
    log: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`dockrion-runtime serve` in its own process on `port` (a free one by default), with
    `environ` added to the environment and its log (stderr) written to `log` when given,
    once it is ready."""
    port = harness.free_port() if port is None else port
    with contextlib.ExitStack() as files:
        sink: Any = subprocess.DEVNULL if log is None else files.enter_context(log.open("wb"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockrion_runtime",
                "serve",
                str(dockfile),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=None if environ is None else {**os.environ, **environ},
            # its own process group, so `kill_server` also stops the workers it forks
            start_new_session=True,
        )
    return process, wait_ready(process, port, f"server for {dockfile}")


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The server processes a test starts (`launch`), killed when it ends."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill_server(process)


def launch(
    dockfile: Path, servers: list[subprocess.Popen[bytes]], *args: str, **options: Any
) -> str:
    """`start_server(dockfile, *args, **options)`, the process kept in `servers`; its URL."""
    process, url = start_server(dockfile, *args, **options)
    servers.append(process)
    return url


def require_nginx() -> None:
    """Skip the test where nginx is not installed (fail it on CI, which installs it)."""
    if harness.nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed; .ci/run must install it")
        pytest.skip("nginx is not installed")


def wait_ready(process: subprocess.Popen[bytes], port: int, name: str = "server") -> str:
    """The URL of the server `process` started on `port`, once `/ready` answers 200 (it is
    killed if it exits or is not ready within 60 s)."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not become ready")
        time.sleep(0.1)


def kill_server(process: subprocess.Popen[bytes]) -> None:
    """Kill a `start_server` process and every process it started (uvicorn workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port, handed to uvicorn as is (no race
    between picking the port and binding it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_address(app: Any, **settings: Any) -> Iterator[tuple[str, int]]:
    """uvicorn serving `app` (with `settings`) in a thread on a free loopback port; its
    address."""
    sock = bound_socket()
    config = uvicorn.Config(app, log_level="warning", **settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    with serve_address(app, lifespan="on") as (host, port):
        yield f"http://{host}:{port}"


@contextmanager
def serve_guarded(protocol: str, app: Any, options: ServerOptions) -> Iterator[tuple[str, int]]:
    """`app` served on the guarded HTTP protocol named `protocol` with `options` (skipped
    where it is not installed); the defaults are restored afterwards."""
    guarded: Any = getattr(http_protocols, protocol, None)
    if guarded is None:
        pytest.skip("httptools is not installed")
    settings = uvicorn_options(options)
    settings["http"] = guarded
    try:
        with serve_address(app, **settings) as address:
            yield address
    finally:
        uvicorn_options(ServerOptions.from_limits(ServerLimits()))


def read_answer(conn: socket.socket) -> bytes:
    """One HTTP answer read from `conn`: its head and `Content-Length` bytes of body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        assert chunk, f"closed before a whole answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, f"closed before a whole answer: {received!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def write_project(
    tmp_path: Path,
    handler: str,
    extra: str = "",
    module: str = AGENT,
    *,
    entrypoint: bool = False,
    framework: str = "custom",
) -> Path:
    """A Dockfile and its agent module; `entrypoint=True` makes `handler` a factory."""
    name = f"agent_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module))
    dockfile = tmp_path / "Dockfile.yaml"
    target = (
        f'entrypoint: "{name}:{handler}", framework: {framework}'
        if entrypoint
        else f'handler: "{name}:{handler}"'
    )
    dockfile.write_text(
        'version: "1.0"\n'
        f"agent: {{name: test-agent, {target}}}\n"
        "io_schema:\n  input:\n    type: object\n    properties: {query: {type: string}}\n"
        "    required: [query]\n"
        + ("" if "expose:" in extra else "expose: {host: 127.0.0.1}\n")
        + textwrap.dedent(extra)
    )
    return dockfile


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`serve("echo", extra_yaml)` -> base URL of a live server for that handler."""
    with_stack: list[Any] = []

    def start(
        handler: str,
        extra: str = "",
        module: str = AGENT,
        environ: dict[str, str] | None = None,
        *,
        entrypoint: bool = False,
        framework: str = "custom",
    ) -> str:
        dockfile = write_project(
            tmp_path, handler, extra, module, entrypoint=entrypoint, framework=framework
        )
        context = serve_app(create_app(dockfile, environ=environ))
        with_stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(with_stack):
        context.__exit__(None, None, None)
    for name in [m for m in sys.modules if m.startswith("agent_")]:
        del sys.modules[name]


def agent_module(tmp_path: Path) -> Any:
    return sys.modules[f"agent_{tmp_path.name.replace('-', '_')}"]

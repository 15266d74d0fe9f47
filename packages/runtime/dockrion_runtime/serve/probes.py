"""A listener of its own for `/health` and `/ready`, off the event loop that serves the API.

On the API's port a probe is one more connection for the event loop: while hundreds of
streams start at once, the loop serves the probe in turn with them, and a probe that waits
a second fails, and the orchestrator restarts a pod that was merely busy. The probe
listener (`expose.probe_port`, `serve --probe-port`) is a small HTTP/1.1 server in a thread
with its own event loop. It never waits for the API's loop: a probe waits at most for the
interpreter to hand the thread the GIL (`sys.getswitchinterval()`, 5 ms, a few times).

Readiness stays true readiness. The API's loop checks it every `CHECK_INTERVAL` seconds
(agent loaded, events backend answering, not shutting down) and publishes the answer;
the listener serves the latest one. The age of that answer is itself a check: a loop that
has not published for `READY_STALE` seconds cannot serve either (not ready), and one
that has not for `LIVE_STALE` seconds is stuck (`/health` fails too, so the orchestrator
restarts the process, as it would when `/health` on the API's port stopped answering).

The listener answers `GET` and `HEAD` of exactly those two paths, one request per
connection, with the JSON bodies of the API's own `/health` and `/ready`; anything else is
a 4xx with the usual error body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import h11

from ..errors import error_body

__all__ = ["CHECK_INTERVAL", "LIVE_STALE", "READY_STALE", "ProbeListener"]

log = logging.getLogger("dockrion.runtime")

Body = dict[str, Any]

# Seconds between two readiness checks on the API's loop.
CHECK_INTERVAL = 1.0
# A readiness check that takes longer (a backend that hangs) counts as not ready.
CHECK_TIMEOUT = 2.0
# No readiness published for this long: the API's loop is not turning; not ready.
READY_STALE = 10.0
# ... for this long: the loop is stuck; `/health` fails as well.
LIVE_STALE = 60.0
# A probe sends a short head at once: past these, the connection is refused.
HEAD_TIMEOUT = 5.0
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64

PATHS = ("/health", "/ready")


class ProbeListener:
    """`/health` and `/ready` on `host:port`, served from a thread of their own.

    `health` builds the `/health` body (called in the listener's thread, so it must only
    read immutable state); `/ready` serves what the API's loop last `publish`ed, until
    nothing was published for `ready_stale` seconds (`/health` fails past `live_stale`)."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], Body],
        *,
        ready_stale: float = READY_STALE,
        live_stale: float = LIVE_STALE,
    ) -> None:
        self.host = host
        self.port = port
        self.ready_stale = ready_stale
        self.live_stale = live_stale
        self._health = health
        status, body = _not_ready("starting")
        self._readiness: tuple[int, bytes, float] = (status, _json(body), time.monotonic())
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._connections = 0

    @property
    def address(self) -> tuple[str, int]:
        """Where the listener is bound (its port when `port` was 0)."""
        if self._socket is None:
            return self.host, self.port
        host, port = self._socket.getsockname()[:2]
        return host, port

    def bind(self) -> None:
        """Take the port now (raises OSError when it is in use); `start` serves it."""
        if self._socket is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._socket = socket.create_server((self.host, self.port), family=family)

    def publish(self, status: int, body: Body) -> None:
        """The answer `/ready` gives from now on (called from the API's loop)."""
        # One tuple assigned at once: the listener's thread sees the old or the new one.
        self._readiness = (status, _json(body), time.monotonic())

    # --- life cycle, driven from the API's loop ---------------------------------------------

    async def start(self, readiness: Callable[[], Awaitable[tuple[int, Body]]]) -> None:
        """Serve in a thread of its own, and publish `readiness()` every `CHECK_INTERVAL`
        seconds from the calling loop until `stop`."""
        self.bind()
        assert self._socket is not None
        self.publish(*await readiness())
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(self._socket, started), name="dockrion-probes", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(started.wait, 30)
        if not self._thread.is_alive():
            raise OSError(f"the probe listener on {self.host}:{self.port} did not start")
        self._publisher = asyncio.create_task(self._publish_every(readiness))
        host, port = self.address
        log.info("probes (/health, /ready) served at http://%s:%d", host, port)

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, 30)
        self._loop = self._thread = None
        self.unbind()

    def unbind(self) -> None:
        """Give the port back (`stop` does it too)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _publish_every(self, readiness: Callable[[], Awaitable[tuple[int, Body]]]) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    status, body = await readiness()
            except TimeoutError:
                status, body = _not_ready(
                    f"the readiness check did not finish within {CHECK_TIMEOUT:g}s"
                )
            except Exception:
                log.exception("the readiness check failed")
                status, body = _not_ready("the readiness check failed")
            self.publish(status, body)

    # --- the listener's thread ---------------------------------------------------------------

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: _ProbeProtocol(self), sock=sock)
            )
            started.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
        finally:
            started.set()
            loop.close()

    def answer(self, method: str, target: str) -> tuple[int, bytes]:
        """The status and JSON body for one request (in the listener's thread)."""
        path = target.split("?", 1)[0]
        if path not in PATHS:
            message = f"Not found: {path}; this port serves only /health and /ready"
            return 404, _json(error_body(message, "NOT_FOUND"))
        if method not in ("GET", "HEAD"):
            message = f"Method {method} not allowed on {path}; use GET"
            return 405, _json(error_body(message, "METHOD_NOT_ALLOWED"))
        status, body, published = self._readiness
        stalled = time.monotonic() - published
        if path == "/health":
            if stalled > self.live_stale:
                return 503, _stalled(stalled)
            return 200, _json(self._health())
        if stalled > self.ready_stale:
            return 503, _stalled(stalled)
        return status, body


class _ProbeProtocol(asyncio.Protocol):
    """One request per connection: parsed by h11, answered, closed."""

    def __init__(self, listener: ProbeListener) -> None:
        self._listener = listener
        self._parser = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._listener._connections += 1
        if self._listener._connections > MAX_CONNECTIONS:
            message = f"The probe listener is at its limit of {MAX_CONNECTIONS} connections"
            self._respond(503, _json(error_body(message, "SERVER_BUSY")))
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HEAD_TIMEOUT, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        # Everything before the answer is head (a probe sends no body); h11 bounds only a
        # head still arriving, so a large one arriving whole is counted here.
        self._received += len(data)
        if self._received > MAX_HEAD_BYTES:
            message = f"The request line and headers are over the {MAX_HEAD_BYTES} byte limit"
            self._respond(400, _json(error_body(message, "BAD_REQUEST")))
            return
        self._parser.receive_data(data)
        try:
            event = self._parser.next_event()
        except h11.RemoteProtocolError:
            self._respond(400, _json(error_body("Malformed HTTP request", "BAD_REQUEST")))
            return
        if isinstance(event, h11.Request):
            method = event.method.decode("ascii", "replace")
            status, body = self._listener.answer(method, event.target.decode("ascii", "replace"))
            self._respond(status, body, head_only=method == "HEAD")

    def eof_received(self) -> bool | None:
        if self._transport is not None and not self._transport.is_closing():
            self._respond(400, _json(error_body("Malformed HTTP request", "BAD_REQUEST")))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._connections -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        message = f"Request line and headers not received within {HEAD_TIMEOUT:g}s"
        self._respond(408, _json(error_body(message, "REQUEST_TIMEOUT")))

    def _respond(self, status: int, body: bytes, *, head_only: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._transport is not None
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "cache-control: no-store\r\nx-content-type-options: nosniff\r\n"
            + ("allow: GET, HEAD\r\n" if status == 405 else "")
            + "connection: close\r\n\r\n"
        )
        self._transport.write(head.encode("latin-1") + (b"" if head_only else body))
        self._transport.close()


def _json(body: Body) -> bytes:
    return json.dumps(body).encode()


def _not_ready(reason: str) -> tuple[int, Body]:
    return 503, {"status": "not_ready", **error_body(reason, "AGENT_NOT_READY")}


def _stalled(seconds: float) -> bytes:
    message = f"the server's event loop has not run for {seconds:.0f}s"
    return _json(error_body(message, "EVENT_LOOP_STALLED") | {"status": "stalled"})

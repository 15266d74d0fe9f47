"""The server `serve` runs, and the uvicorn settings for the HTTP server's own limits: how
long a client may take to send a request head, how long an idle connection stays open, how
many connections are open at once, how large a request head may be, how large a WebSocket
message may be and how often an open WebSocket is pinged.

The protocols that enforce them are in `serve/http_protocols.py` (HTTP, on h11 or
httptools, with the lingering close) and `serve/websocket_protocol.py`; the options they
read, in `serve/options.py`.

`GracefulServer` is the server `serve` runs in every process that serves (the only one,
each worker of `--workers N`, the reloader's child under `--reload`): uvicorn's server
with a drain on SIGTERM.
"""

from __future__ import annotations

import gc
import socket
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.importer import import_from_string

from . import options as process_options
from .http_protocols import HttpToolsProtocol
from .options import ServerOptions

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["GC_THRESHOLD", "GracefulServer", "tune_gc", "uvicorn_options"]

# Allocations (net of frees) between two young collections; CPython's default is 700.
GC_THRESHOLD = 50_000


def uvicorn_options(options: ServerOptions) -> dict[str, Any]:
    """The uvicorn settings for `options` (and the protocol that enforces the rest)."""
    process_options.current = options
    protocol = "GuardedH11Protocol" if HttpToolsProtocol is None else "GuardedHttpToolsProtocol"
    return {
        "http": f"dockrion_runtime.serve.http_protocols:{protocol}",
        "ws": "dockrion_runtime.serve.websocket_protocol:CoalescingWebSocketProtocol",
        "timeout_keep_alive": options.keep_alive_timeout,
        "h11_max_incomplete_event_size": options.max_header_bytes,
        "ws_max_size": options.websocket_max_message_bytes,
        "ws_ping_interval": options.websocket_ping_interval,
        "ws_ping_timeout": options.websocket_ping_timeout,
        "ws_per_message_deflate": options.websocket_compression,
    }


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what start-up built again.

    With CPython's defaults, a burst of connections (hundreds of streams set up at once)
    grows the heap fast enough to run a full collection about every second, each holding
    the GIL for 100-300 ms with 2,500 connections open (`tools/bench/probe_latency.py`):
    the API's loop and the probe listener's thread both stop. A young generation of
    50,000 objects (a collection of it takes milliseconds) makes full collections rare;
    `gc.freeze()` leaves the modules, the agent and the app out of every later scan.
    `serve` calls this once the agent is loaded: a process that embeds the app keeps its
    own settings."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, oldest)
    gc.freeze()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM stops accepting, lets running agents finish within
    `grace` seconds, cancels the rest (reason `shutdown`, so open streams end with a
    terminal event), then closes.

    Given no `runtime`, it runs in a process that uvicorn's supervisor spawned (a worker,
    the reloader's child), and `config.app` names the factory that builds this process's
    app from the Dockfile: `run` calls it before serving, so that the drain knows the
    app's runtime."""

    def __init__(
        self, config: uvicorn.Config, grace: float, runtime: Runtime | None = None
    ) -> None:
        super().__init__(config)
        self.grace = grace
        self.runtime = runtime

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        if self.runtime is None:
            app = import_from_string(self.config.app)()
            self.runtime = app.state.runtime
            self.config.app, self.config.factory = app, False
        super().run(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        if self.runtime is not None:
            await self.runtime.drain(self.grace)
        await super().shutdown(sockets)

"""The `expose` section of a Dockfile v1: where the agent is served, over which
transports, with which server limits, and the AG-UI and MCP endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from ._fields import Between, _Section
from ._mcp import McpConfig

__all__ = ["AgUiConfig", "ExposeConfig", "ServerLimits"]


class ServerLimits(_Section):
    """What one client may hold of the server: time to send a request head, idle time
    between requests, open connections, size of a request head, size of a WebSocket
    message, how long a silent WebSocket peer is kept, and whether WebSocket messages are
    compressed."""

    # Seconds from connecting (or the first byte of the next request on a kept-alive
    # connection) until the request line and headers are complete; then the connection is
    # closed. Stops clients that send headers byte by byte from holding connections.
    header_timeout: Annotated[int, Between(1, 300)] = 10
    # Idle seconds a connection is kept open between requests.
    keep_alive_timeout: Annotated[int, Between(1, 300)] = 5
    # Open connections (SSE streams included); past it new requests get 503.
    max_connections: Annotated[int, Between(1, 1_000_000)] = 4096
    # Largest request line plus headers, in bytes; past it the request gets 400.
    max_header_bytes: Annotated[int, Between(1024, 1_048_576)] = 16384
    # Largest message a WebSocket client may send, in bytes; past it the server closes the
    # socket with 1009 before reading it whole. (The agent's input is also bounded by
    # `arguments.max_body_bytes`: 4413 PAYLOAD_TOO_LARGE.)
    websocket_max_message_bytes: Annotated[int, Between(1024, 268_435_456)] = 16_777_216
    # Seconds between the server's protocol pings on an open WebSocket; a client that does
    # not answer one within `websocket_ping_timeout` seconds loses its socket (1011).
    websocket_ping_interval: Annotated[int, Between(1, 3600)] = 20
    websocket_ping_timeout: Annotated[int, Between(1, 3600)] = 20
    # Accept a client's offer of permessage-deflate (browsers always offer it): about a
    # seventh of the bytes on the wire for event streams, at the price of compressing each
    # message (a WebSocket flood to a compressing client runs at about 0.6x the rate of
    # SSE). Off: every client gets uncompressed frames, the cheapest stream to serve.
    websocket_compression: bool = True


class AgUiConfig(_Section):
    """`POST /ag-ui`: the agent served over the AG-UI protocol to agent front ends
    (needs `dockrion-runtime[ag-ui]` and background runs, `streaming.async_runs`)."""

    enabled: bool = False
    # Handler agents (framework custom): the body field that receives the text of the last
    # user message; a LangGraph graph gets the messages themselves.
    message_field: Annotated[str, Field(min_length=1, max_length=64)] = "message"


def _transports(value: Any) -> Any:
    """One problem, in words, for a `streaming` value of neither form."""
    one = isinstance(value, str) and value in ("sse", "websocket", "none")
    several = isinstance(value, list) and bool(value)
    several = several and all(item in ("sse", "websocket") for item in value)
    if not (one or several):
        raise ValueError("must be sse, websocket or none, or a list of sse and websocket")
    if isinstance(value, list) and len(set(value)) != len(value):
        raise ValueError("each streaming transport may be listed once")
    return value


StreamingTransports = Annotated[
    list[Literal["sse", "websocket"]], Field(min_length=1, json_schema_extra={"uniqueItems": True})
]


class ExposeConfig(_Section):
    rest: bool = True
    # `sse`: POST /invoke/stream; `websocket`: WS /invoke/ws and WS /runs/{run_id}/ws;
    # both: [sse, websocket]; `none`: no live stream of Pattern A.
    streaming: Annotated[
        Literal["sse", "websocket", "none"] | StreamingTransports, BeforeValidator(_transports)
    ] = "sse"
    port: Annotated[int, Between(1, 65535)] = 8080
    host: str = "0.0.0.0"  # noqa: S104 - a server inside a container listens on every interface
    cors: dict[str, list[str]] | None = None
    limits: ServerLimits | None = None
    # A port of its own for `GET /health` and `GET /ready`, served by a thread that never
    # waits for the API's event loop, so probes answer at once however busy the API is.
    # Point orchestrator probes at it. null (the default): the probes are on `port` only.
    probe_port: Annotated[int, Between(1, 65535)] | None = None
    # Headers added to every response, over the runtime's secure defaults; null drops one.
    security_headers: dict[str, str | None] | None = None
    ag_ui: AgUiConfig | None = None
    # The agent as one tool for MCP clients (assistants, agent frameworks); off by default.
    mcp: McpConfig | None = None
    # `GET /playground`: a page to try the agent in a browser (public static files; every
    # API call it makes carries the key the user types into it). false stops serving it.
    playground: bool = True

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "not": {
                "required": ["rest", "streaming"],
                "properties": {"rest": {"const": False}, "streaming": {"const": "none"}},
            }
        },
    )

    def serves(self, transport: Literal["sse", "websocket"]) -> bool:
        """Whether `streaming` asks for this transport (alone or in a list)."""
        streaming = self.streaming
        return transport in streaming if isinstance(streaming, list) else streaming == transport

    @model_validator(mode="after")
    def _something_exposed(self) -> ExposeConfig:
        if not self.rest and self.streaming == "none":
            raise ValueError(
                "rest: false with streaming: none exposes nothing; enable at least one"
            )
        if self.probe_port == self.port:
            raise ValueError(f"probe_port must differ from port ({self.port})")
        return self

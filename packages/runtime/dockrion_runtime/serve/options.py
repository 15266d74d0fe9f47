"""The server's own limits, as `serve` runs it: the options one process serves with.

The protocols read them per connection (uvicorn builds a protocol per connection from a
class, with no way to hand it options), so they live here, set once per process by
`uvicorn_options` in `serve/server.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dockrion_schema import ServerLimits

__all__ = ["ServerOptions", "current"]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    header_timeout: float
    keep_alive_timeout: float
    max_connections: int
    max_header_bytes: int
    websocket_max_message_bytes: int = 16_777_216
    websocket_ping_interval: float = 20.0
    websocket_ping_timeout: float = 20.0
    websocket_compression: bool = True

    @classmethod
    def from_limits(cls, limits: ServerLimits, **overrides: Any) -> ServerOptions:
        values: dict[str, Any] = {
            "header_timeout": float(limits.header_timeout),
            "keep_alive_timeout": float(limits.keep_alive_timeout),
            "max_connections": limits.max_connections,
            "max_header_bytes": limits.max_header_bytes,
            "websocket_max_message_bytes": limits.websocket_max_message_bytes,
            "websocket_ping_interval": float(limits.websocket_ping_interval),
            "websocket_ping_timeout": float(limits.websocket_ping_timeout),
            "websocket_compression": limits.websocket_compression,
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


# One server per process: the protocol, which uvicorn builds per connection from a class,
# reads the options of the app this process serves.
current = ServerOptions.from_limits(ServerLimits())

"""Transports of `serve`'s connections that join writes: fewer system calls and fewer TCP
segments for the same bytes.

uvicorn writes a response's head and its body with one `transport.write` each, and a
WebSocket frame per message; each write is a system call and, with `TCP_NODELAY`, a
segment of its own. These wrappers sit between uvicorn's protocol and the event loop's
transport and join what would leave separately.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["CoalescingTransport", "HeadHoldingTransport"]


class _JoiningTransport:
    """What both wrappers share: everything but `write` goes to the real transport, and
    closing writes what waits first."""

    __slots__ = ("_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop

    def _flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadHoldingTransport(_JoiningTransport):
    """An HTTP connection's transport that holds the first write after each request's bytes
    arrive (the response head) until the next write or the end of the loop's turn: a JSON
    answer, or an SSE head and the events ready with it, leave in one system call and one
    TCP segment instead of one each. Later writes go out at once: a stream is never held
    back, and the loop needs no extra turn per write (a turn can cost a whole GIL switch
    interval while a sync agent's thread is busy)."""

    __slots__ = ("_held", "_lingering", "hold_next", "linger")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transport, loop)
        self._held: bytes | None = None
        self.hold_next = False  # set by the protocol when a request's bytes arrive
        # Asked when the connection is closed: true when the protocol closes it later
        # itself (it first reads what the client is still sending, see `lingering`).
        self.linger: Callable[[], bool] | None = None
        self._lingering = False

    @property
    def lingering(self) -> bool:
        """Closed as far as the protocol above is concerned, while the real connection
        still reads (and drops) the rest of a request before closing."""
        return self._lingering

    def close(self) -> None:
        self._flush()
        if self._lingering:
            return
        if self.linger is not None and self.linger():
            self._lingering = True
            return
        self._transport.close()

    def is_closing(self) -> bool:
        return self._lingering or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        elif self.hold_next:
            self.hold_next = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)


class CoalescingTransport(_JoiningTransport):
    """A transport whose writes made during one turn of the event loop leave in one write
    at the end of that turn (or as soon as 64 KiB are waiting, so that a long burst still
    meets the transport's flow control). The WebSocket protocol of `serve` writes through
    one: the frames of one batch of events leave together."""

    __slots__ = ("_pending", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transport, loop)
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= 65_536:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

"""The benchmark client: raw-socket HTTP/1.1 on asyncio Protocols, parsing in
`data_received` (no StreamReader, no task switch per read), so that the client is never
the busiest process of a measurement.

- `stream()`: one request on a fresh connection whose response is an SSE stream; decodes
  chunked transfer encoding and finds each event's `id:` and `event:` as the bytes arrive
  (sequence gaps and duplicates counted; data JSON decoded only for the terminal event).
- `KeepAlive`: one keep-alive connection for request/response exchanges (`POST /invoke`).
- `calibrate()`: how fast this client parses a stream alone (no network, no server).

Loopback only: `Target` refuses any other host.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = [
    "Exchange",
    "KeepAlive",
    "StreamResult",
    "Target",
    "calibrate",
    "record_events",
    "run_exchange",
    "stream",
]

PC = time.perf_counter
# One stored event: `id:` then `event:` (the first frame may carry a `retry:` line before).
# Data is one line of JSON, which escapes newlines, so nothing inside it can match.
_FRAME = re.compile(rb"id: (\d+)\nevent: ([a-z_]+)\n")
_TERMINAL = (b"complete", b"error", b"cancelled")


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.host != "127.0.0.1":
            raise ValueError(f"benchmarks run on loopback only, not {self.host!r}")

    @classmethod
    def of(cls, url: str) -> Target:
        rest = url.removeprefix("http://")
        host, _, port = rest.partition(":")
        return cls(host, int(port.rstrip("/")))


def request_bytes(target: Target, method: str, path: str, body: Any = None) -> bytes:
    content = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: {target.host}:{target.port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(content)}\r\n\r\n"
    )
    return head.encode() + content


class Chunked:
    """Incremental decoder of HTTP/1.1 chunked transfer encoding."""

    __slots__ = ("done", "head", "remaining", "skip")

    def __init__(self) -> None:
        self.head = b""  # an unfinished chunk-size line
        self.remaining = 0  # chunk bytes still to come
        self.skip = 0  # CRLF bytes after a chunk still to skip
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.head:
            data, self.head = self.head + data, b""
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self.remaining:
                take = min(self.remaining, end - pos)
                out.append(data[pos : pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.skip = 2
            elif self.skip:
                step = min(self.skip, end - pos)
                pos += step
                self.skip -= step
            else:
                newline = data.find(b"\r\n", pos)
                if newline < 0:
                    self.head = data[pos:]
                    break
                size = int(data[pos:newline].split(b";", 1)[0], 16)
                pos = newline + 2
                if size == 0:
                    self.done = True
                else:
                    self.remaining = size
        return out[0] if len(out) == 1 else b"".join(out)


@dataclass(slots=True)
class StreamResult:
    status: int = 0
    started: float = 0.0
    first_byte: float | None = None
    first_token: float | None = None
    ended: float = 0.0
    events: int = 0
    tokens: int = 0
    expected: int = -1  # the next sequence; -1 before the first
    gaps: int = 0
    duplicates: int = 0
    terminal: str | None = None
    terminal_data: Any = None
    nbytes: int = 0
    reads: int = 0
    error: str | None = None

    @property
    def first_token_ms(self) -> float | None:
        return None if self.first_token is None else 1000 * (self.first_token - self.started)

    @property
    def wall(self) -> float:
        return self.ended - self.started


class SseParser:
    """Finds stored events in decoded SSE bytes; counts tokens, gaps and duplicates."""

    __slots__ = ("rest", "result")

    def __init__(self, result: StreamResult) -> None:
        self.result = result
        self.rest = b""

    def feed(self, data: bytes, now: float) -> None:
        if self.rest:
            data, self.rest = self.rest + data, b""
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self.rest = data
            return
        if cut + 2 < len(data):
            self.rest = data[cut + 2 :]
            data = data[: cut + 2]
        frames = _FRAME.findall(data)
        if not frames:
            return
        names = [name for _, name in frames]
        sequences = [int(sequence) for sequence, _ in frames]
        if record_events(self.result, names, sequences, now):
            start = data.rfind(b"\ndata: ") + 7
            self.result.terminal_data = json.loads(data[start : data.index(b"\n", start)])


def record_events(
    result: StreamResult, names: list[bytes], sequences: list[int], now: float
) -> bool:
    """Count a batch of events (names and sequences, in order) into `result`: tokens, the
    first token's time, gaps and duplicates against the sequence expected next. Returns
    whether the batch ends with a terminal event (its name is then in `result.terminal`)."""
    result.events += len(names)
    tokens = names.count(b"token")
    if tokens:
        if result.first_token is None:
            result.first_token = now
        result.tokens += tokens
    first = result.expected if result.expected >= 0 else sequences[0]
    if sequences == list(range(first, first + len(sequences))):
        result.expected = first + len(sequences)
    else:
        for sequence in sequences:
            if result.expected >= 0 and sequence < result.expected:
                result.duplicates += 1
                continue
            if result.expected >= 0 and sequence > result.expected:
                result.gaps += sequence - result.expected
            result.expected = sequence + 1
    if names[-1] not in _TERMINAL:
        return False
    result.terminal = names[-1].decode()
    return True


class _Head:
    """A response head: status, whether the body is chunked, its length otherwise."""

    __slots__ = ("chunked", "length", "status")

    def __init__(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self.chunked = False
        self.length = -1
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"content-length":
                self.length = int(value)


class Exchange(asyncio.Protocol):
    """One request on a fresh connection, whose end resolves `done`: the part every
    streaming client here shares (the subclass parses what arrives)."""

    def __init__(self, request: bytes, result: StreamResult, done: asyncio.Future[None]) -> None:
        self.request = request
        self.result = result
        self.done = done
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.result.started = PC()
        self.transport.write(self.request)

    def ended_cleanly(self) -> bool:
        """Whether the exchange reached its proper end before the connection went."""
        return self.result.terminal is not None

    def _finish(self) -> None:
        self.result.ended = PC()
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.result.ended = PC()
            if not self.ended_cleanly():
                self.result.error = f"connection lost: {exc}"
            self.done.set_result(None)


class _StreamProtocol(Exchange):
    def __init__(self, request: bytes, result: StreamResult, done: asyncio.Future[None]) -> None:
        super().__init__(request, result, done)
        self.head: _Head | None = None
        self.chunked = Chunked()
        self.parser = SseParser(result)
        self.body = 0

    def data_received(self, data: bytes) -> None:
        now = PC()
        result = self.result
        result.reads += 1
        if self.head is None:
            self.buffer += data
            cut = self.buffer.find(b"\r\n\r\n")
            if cut < 0:
                return
            self.head = _Head(self.buffer[:cut])
            result.status = self.head.status
            data, self.buffer = self.buffer[cut + 4 :], b""
            if not data and (self.head.chunked or self.head.length):
                return
        if result.first_byte is None:
            result.first_byte = now
        result.nbytes += len(data)
        if self.head.chunked:
            payload = self.chunked.feed(data)
            self.parser.feed(payload, now)
            if self.chunked.done:
                self._finish()
        else:
            self.parser.feed(data, now)
            self.body += len(data)
            if 0 <= self.head.length <= self.body:
                self._finish()


async def run_exchange(
    target: Target,
    protocol: Callable[[asyncio.Future[None]], Exchange],
    result: StreamResult,
    timeout: float,
) -> None:
    """Open a connection served by `protocol(done)` and wait until it resolves `done`, at
    most `timeout` s; a timeout or a socket error is recorded on `result`, and so is the end
    time whatever happened."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: protocol(done), target.host, target.port
            )
            await done
    except TimeoutError:
        result.error = "timeout"
    except OSError as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        if transport is not None:
            transport.close()
        if not result.ended:
            result.ended = PC()


async def stream(
    target: Target, method: str, path: str, body: Any = None, *, timeout: float = 120.0
) -> StreamResult:
    """One request on a fresh connection, its SSE response parsed to the end."""
    result = StreamResult()
    request = request_bytes(target, method, path, body)
    await run_exchange(target, lambda done: _StreamProtocol(request, result, done), result, timeout)
    return result


class _KeepAliveProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.head: _Head | None = None
        self.chunked: Chunked | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            self.buffer += data
            cut = self.buffer.find(b"\r\n\r\n")
            if cut < 0:
                return
            self.head = _Head(self.buffer[:cut])
            data, self.buffer = self.buffer[cut + 4 :], b""
            self.chunked = Chunked() if self.head.chunked else None
        if self.chunked is not None:
            self.body.append(self.chunked.feed(data))
            complete = self.chunked.done
        else:
            self.body.append(data)
            self.size += len(data)
            complete = self.size >= self.head.length
        if complete:
            status, body = self.head.status, b"".join(self.body)
            self.head, self.chunked, self.body, self.size = None, None, [], 0
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))


class KeepAlive:
    """One keep-alive connection; `exchange()` sends a request and reads its response."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.protocol = _KeepAliveProtocol()

    async def __aenter__(self) -> KeepAlive:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self.protocol, self.target.host, self.target.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.close()

    async def exchange(self, request: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
        protocol = self.protocol
        assert protocol.transport is not None
        protocol.waiter = asyncio.get_running_loop().create_future()
        protocol.transport.write(request)
        async with asyncio.timeout(timeout):
            return await protocol.waiter


@dataclass(slots=True)
class Calibration:
    events_per_s: float
    events_per_s_one_read_per_event: float
    bytes_per_event: float
    extra: dict[str, float] = field(default_factory=dict)


def calibrate(events: int = 20_000, frame: bytes | None = None) -> Calibration:
    """The client alone: chunked decoding and SSE parsing of a recorded-like stream, in
    64 KiB reads and in one read per event (no network, no server)."""
    if frame is None:
        frame = (
            b'id: %d\nevent: token\ndata: {"id":"evt-0123456789ab","type":"token",'
            b'"run_id":"6f1c1f0e-2a44-4f7e-9d3b-0d6a3c1f9b2e","sequence":%d,'
            b'"timestamp":"2026-01-01T00:00:00.000000+00:00","content":"tok",'
            b'"finish_reason":null}\n\n'
        )
    frames = [frame % (index, index) for index in range(events)]
    pieces = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in frames]
    wire = b"".join(pieces) + b"0\r\n\r\n"

    def parse(reads: list[bytes]) -> float:
        result = StreamResult()
        decoder, parser = Chunked(), SseParser(result)
        started = PC()
        for read in reads:
            parser.feed(decoder.feed(read), started)
        elapsed = PC() - started
        assert result.tokens == events and not result.gaps and decoder.done, result
        return elapsed

    big = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    small = [*pieces, b"0\r\n\r\n"]
    best_big = min(parse(big) for _ in range(3))
    best_small = min(parse(small) for _ in range(3))
    return Calibration(events / best_big, events / best_small, len(wire) / events)

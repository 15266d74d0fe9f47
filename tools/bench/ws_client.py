"""The benchmark's WebSocket client: raw sockets on an asyncio Protocol, frames parsed in
`data_received` like `client.py` parses SSE, so that the client is never the busiest
process of a measurement (the `websockets` library's asyncio client runs a task and a
queue per message: `calibrate()` measures its parsing core too, for comparison).

- `session()`: one WebSocket on a fresh connection: the opening handshake by hand, an
  optional first text message (masked, as a client must), then every server frame to the
  close frame. Events are found in the text payloads of one read at once (their `type`
  and `sequence`, gaps and duplicates counted; the JSON decoded only for the terminal
  event). `deflate=True` offers permessage-deflate, as browsers do, and inflates.
- `calibrate()`: this client's parsing alone, and the `websockets` library's sans-I/O
  parser on the same bytes (no network, no server).

Loopback only (`Target` refuses any other host).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

from client import Exchange, StreamResult, Target, record_events, run_exchange

__all__ = ["WsCalibration", "WsResult", "calibrate", "encode_frame", "session"]

PC = time.perf_counter
# Every event's JSON starts with `id` (stored events), `type`, `run_id`, `sequence`.
_EVENT = re.compile(rb'"type":"([a-z_:]+)","run_id":"[^"]*","sequence":(\d+)')
_TERMINAL = (b"complete", b"error", b"cancelled")
_TAIL = b"\x00\x00\xff\xff"  # what permessage-deflate strips from each message
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(slots=True)
class WsResult(StreamResult):
    close_code: int | None = None
    deflate: bool = False  # permessage-deflate was negotiated


def encode_frame(opcode: int, payload: bytes, *, mask: bool = True) -> bytes:
    """One final frame; masked (as every client frame must be) unless `mask` is False."""
    length = len(payload)
    first = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if length < 126:
        head = first + bytes([bit | length])
    elif length < 1 << 16:
        head = first + bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head = first + bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return head + key + masked


def handshake(target: Target, path: str, *, deflate: bool = False) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    extensions = (
        "sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"
        if deflate
        else ""
    )
    return (
        f"GET {path} HTTP/1.1\r\nhost: {target.host}:{target.port}\r\n"
        "upgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n{extensions}\r\n"
    ).encode()


class FrameParser:
    """Server frames (unmasked, never fragmented by the servers measured) to events."""

    __slots__ = ("inflater", "pongs", "rest", "result")

    def __init__(self, result: WsResult) -> None:
        self.result = result
        self.rest = b""
        self.inflater = zlib.decompressobj(wbits=-15)
        self.pongs: list[bytes] = []  # pings to answer

    def feed(self, data: bytes, now: float) -> bool:
        """Parse one read; True once the close frame has arrived."""
        if self.rest:
            data, self.rest = self.rest + data, b""
        payloads: list[bytes] = []
        compressed: list[bytes] = []  # consecutive compressed messages, inflated at once
        pos, end = 0, len(data)
        closed = False
        while end - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = (data[start] << 8) | data[start + 1]
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(data[start : start + 8], "big")
                start += 8
            if end - start < length:
                break
            payload = data[start : start + length]
            pos = start + length
            opcode = first & 0x0F
            if opcode == TEXT:
                if first & 0x40:
                    compressed.append(payload)
                    compressed.append(_TAIL)
                else:
                    if compressed:
                        payloads.append(self.inflater.decompress(b"".join(compressed)))
                        compressed = []
                    payloads.append(payload)
            elif opcode == PING:
                self.pongs.append(payload)
            elif opcode == CLOSE:
                self.result.close_code = (
                    int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                )
                closed = True
                break
        if pos < end and not closed:
            self.rest = data[pos:]
        if compressed:
            payloads.append(self.inflater.decompress(b"".join(compressed)))
        if payloads:
            self._events(b"\n".join(payloads), now)
        return closed

    def _events(self, text: bytes, now: float) -> None:
        found = _EVENT.findall(text)
        if not found:
            return
        names = [name for name, _ in found]
        sequences = [int(sequence) for _, sequence in found]
        if record_events(self.result, names, sequences, now):
            start = text.rfind(b'{"id":')
            line_end = text.find(b"\n", start)
            self.result.terminal_data = json.loads(
                text[start : line_end if line_end >= 0 else None]
            )


class _SessionProtocol(Exchange):
    result: WsResult

    def __init__(
        self, request: bytes, first: bytes | None, result: WsResult, done: asyncio.Future[None]
    ) -> None:
        super().__init__(request, result, done)
        self.first = first
        self.open = False
        self.parser = FrameParser(result)

    def ended_cleanly(self) -> bool:
        return self.result.close_code is not None

    def data_received(self, data: bytes) -> None:
        now = PC()
        result = self.result
        result.reads += 1
        assert self.transport is not None
        if not self.open:
            self.buffer += data
            cut = self.buffer.find(b"\r\n\r\n")
            if cut < 0:
                return
            head = self.buffer[:cut].lower()
            result.status = int(head.split(b" ", 2)[1])
            result.deflate = b"permessage-deflate" in head
            data, self.buffer = self.buffer[cut + 4 :], b""
            if result.status != 101:
                self._finish()
                return
            self.open = True
            if self.first is not None:
                self.transport.write(encode_frame(TEXT, self.first))
            if not data:
                return
        if result.first_byte is None:
            result.first_byte = now
        result.nbytes += len(data)
        closed = self.parser.feed(data, now)
        for payload in self.parser.pongs:
            self.transport.write(encode_frame(PONG, payload))
        self.parser.pongs.clear()
        if closed:
            code = struct.pack("!H", result.close_code or 1000)
            self.transport.write(encode_frame(CLOSE, code))
            self._finish()


async def session(
    target: Target,
    path: str,
    first: Any = None,
    *,
    deflate: bool = False,
    timeout: float = 120.0,
) -> WsResult:
    """One WebSocket session on a fresh connection: `first` (JSON) sent once open, then
    every frame to the server's close frame."""
    result = WsResult()
    request = handshake(target, path, deflate=deflate)
    message = None if first is None else json.dumps(first).encode()
    await run_exchange(
        target, lambda done: _SessionProtocol(request, message, result, done), result, timeout
    )
    return result


# --- the client alone ----------------------------------------------------------------------


@dataclass(slots=True)
class WsCalibration:
    events_per_s: float  # this client, 64 KiB reads
    events_per_s_one_read_per_event: float  # this client, one read per frame
    library_events_per_s: float  # the websockets library's sans-I/O framing, 64 KiB reads


_PAYLOAD = (
    b'{"id":"evt-0123456789ab","type":"token","run_id":"6f1c1f0e-2a44-4f7e-9d3b-0d6a3c1f9b2e",'
    b'"sequence":%d,"timestamp":"2026-01-01T00:00:00.000000+00:00","content":"tok",'
    b'"finish_reason":null}'
)


def calibrate(events: int = 20_000) -> WsCalibration:
    """This client's frame parsing alone, in 64 KiB reads and one read per frame, and the
    `websockets` library's parser (its sans-I/O core, without the asyncio client's task
    and queue per message) on the same bytes: no network, no server."""
    from websockets.protocol import Protocol, Side

    frames = [encode_frame(TEXT, _PAYLOAD % index, mask=False) for index in range(events)]
    wire = b"".join(frames)
    big = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]

    def ours(reads: list[bytes]) -> float:
        result = WsResult()
        parser = FrameParser(result)
        started = PC()
        for read in reads:
            parser.feed(read, started)
        elapsed = PC() - started
        assert result.tokens == events and not result.gaps, result
        return elapsed

    def library() -> float:
        protocol = Protocol(Side.CLIENT, max_size=None)
        count = 0
        started = PC()
        for read in big:
            protocol.receive_data(read)
            # framing alone: no decoding, no task, no queue
            count += len(protocol.events_received())
        elapsed = PC() - started
        assert count == events
        return elapsed

    best_big = min(ours(big) for _ in range(3))
    best_small = min(ours(frames) for _ in range(3))
    best_library = min(library() for _ in range(3))
    return WsCalibration(events / best_big, events / best_small, events / best_library)

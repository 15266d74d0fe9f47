"""Server-Sent Events framing: frames for the wire, and a parser for clients and tests."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SseMessage", "SseParser", "encode_comment", "encode_frame", "parse_sse"]


def encode_frame(event_type: str, data_json: str, sequence: int | None = None) -> bytes:
    """`id:` (when stored), `event:`, one `data:` line of compact JSON, blank line."""
    head = f"id: {sequence}\n" if sequence is not None else ""
    return f"{head}event: {event_type}\ndata: {data_json}\n\n".encode()


def encode_comment(text: str) -> bytes:
    """A comment line: invisible to EventSource, keeps proxies from closing idle streams."""
    return f": {text}\n\n".encode()


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Incremental parser following the HTML spec's event-stream rules (comments dropped)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes | str) -> list[SseMessage]:
        # Chunks may split a multi-byte character: decode incrementally.
        self._buffer += self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        messages: list[SseMessage] = []
        while True:
            cut = min(
                (i for i in (self._buffer.find("\n"), self._buffer.find("\r")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                break
            line = self._buffer[:cut]
            skip = 2 if self._buffer[cut : cut + 2] == "\r\n" else 1
            self._buffer = self._buffer[cut + skip :]
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            if not self._data and not self._event:
                return None
            message = SseMessage(
                self._event or "message", "\n".join(self._data), self._id, self._retry
            )
            self._event, self._data, self._retry = "", [], None
            return message
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def parse_sse(stream: bytes | str | Iterable[bytes | str]) -> Iterator[SseMessage]:
    """Every message in a whole stream (or an iterable of chunks)."""
    parser = SseParser()
    chunks = [stream] if isinstance(stream, bytes | str) else stream
    for chunk in chunks:
        yield from parser.feed(chunk)

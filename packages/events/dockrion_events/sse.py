"""Server-Sent Events framing: frames for the wire, and a parser for clients and tests."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SseMessage",
    "SseParser",
    "encode_comment",
    "encode_frame",
    "encode_stored_frame",
    "parse_sse",
]


def encode_frame(event_type: str, data_json: str, sequence: int | None = None) -> bytes:
    """`id:` (when stored), `event:`, one `data:` line of compact JSON, blank line."""
    if sequence is None:
        return f"event: {event_type}\ndata: {data_json}\n\n".encode()
    return encode_stored_frame(sequence, event_type.encode(), data_json.encode())


def encode_stored_frame(sequence: int, event_type: bytes, data_json: bytes) -> bytes:
    """`encode_frame` of a stored event, from its type and JSON already in UTF-8 (as Redis
    returns them)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (sequence, event_type, data_json)


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
    """Incremental parser for the HTML spec's "interpreting an event stream" rules.

    Lines end with CRLF, LF or CR (a CRLF split between two chunks ends one line); one
    leading BOM is dropped; comments and unknown fields are ignored, as is one space after
    a field's colon. A blank line fires the message, unless it had no `data:` line: then
    nothing fires and its `event:` name is forgotten. A message the stream ends in is
    never fired. `id` is the stream's last event id (an `id:` holding NUL is ignored);
    `retry` (ASCII digits only) comes with the next message. Bytes that are not UTF-8
    become U+FFFD.
    """

    __slots__ = ("_bom", "_data", "_decode", "_event", "_id", "_pending", "_retry", "_skip_lf")

    def __init__(self) -> None:
        # Chunks may split a multi-byte character: decode incrementally.
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._bom = True  # nothing decoded yet: a BOM may come first
        self._skip_lf = False  # the last line ended with CR: an LF right after it is its end
        self._pending: list[str] = []  # a line begun but not ended yet
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes | str) -> list[SseMessage]:
        text = self._decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        if self._bom:
            self._bom = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if len(lines) == 1:
            if text:
                self._pending.append(text)
            return []
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending.clear()
        rest = lines.pop()
        if rest:
            self._pending.append(rest)
        messages: list[SseMessage] = []
        data = self._data
        for line in lines:
            if not line:  # dispatch
                if data:
                    messages.append(
                        SseMessage(self._event or "message", "\n".join(data), self._id, self._retry)
                    )
                    data = []
                    self._retry = None
                self._event = ""
                continue
            field, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._id = value
            elif field == "retry" and value.isascii() and value.isdigit():
                self._retry = int(value)
        self._data = data
        return messages


def parse_sse(stream: bytes | str | Iterable[bytes | str]) -> Iterator[SseMessage]:
    """Every message in a whole stream (or an iterable of chunks)."""
    parser = SseParser()
    chunks = [stream] if isinstance(stream, bytes | str) else stream
    for chunk in chunks:
        yield from parser.feed(chunk)

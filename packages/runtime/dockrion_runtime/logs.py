"""Logs as JSON lines or plain text (readable tracebacks), each carrying the id of the
request it belongs to, and the access log: one line per HTTP request. `auto` picks text
when the log goes to a terminal (a developer reading it), JSON lines otherwise (a log
collector parsing it).

`serve` writes the access log itself (`AccessLog`), the line uvicorn would log (client,
request line, status) under uvicorn's logger name, formatted like every other line: no log
record is built per request, and the lines of one turn of the event loop go out in one
write. An app served some other way keeps uvicorn's own access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
import urllib.parse
from contextvars import ContextVar, Token
from typing import Any, ClassVar, TextIO

__all__ = [
    "AccessLog",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "log_format_for",
    "release_access_log",
    "reset_request_id",
    "set_request_id",
    "timestamp",
    "valid_request_id",
]

_request_id: ContextVar[str | None] = ContextVar("dockrion_request_id", default=None)
_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_ids = random.Random()  # noqa: S311 - an identifier, not a secret
_random_bits = _ids.getrandbits
ACCESS_LOGGER = "uvicorn.access"
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def current_request_id() -> str | None:
    return _request_id.get()


def valid_request_id(supplied: bytes | None) -> str:
    """The caller's `X-Request-ID` when it is sane, else a new id (32 hex digits)."""
    if supplied is not None and _VALID_ID.fullmatch(supplied):
        return supplied.decode("ascii")
    return f"{_random_bits(128):032x}"


def set_request_id(request_id: str) -> Token[str | None]:
    """Set the id of the request being served; `reset_request_id` with the token when done."""
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


_second: list[Any] = [None, ""]  # the last whole second seen and its text


def timestamp(created: float) -> str:
    """`datetime.fromtimestamp(created, UTC).isoformat()`, with the date and time of day
    formatted once per second."""
    fraction, whole = math.modf(created)
    micros = round(fraction * 1e6)  # as `datetime.fromtimestamp` rounds
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{micros:06d}+00:00" if micros else f"{_second[1]}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message (request id ...)`, a traceback as Python prints it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        request_id = current_request_id()
        return text if request_id is None else f"{text} (request id {request_id})"


def log_format_for(choice: str, stream: TextIO) -> str:
    """The format `choice` means on `stream`: `auto` is text on a terminal, else json."""
    if choice != "auto":
        return choice
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


class AccessLog:
    """The access log `serve` writes: the line of `JsonFormatter` (or of the text format)
    for uvicorn's `'%s - "%s %s HTTP/%s" %d'` record, without the record. Lines wait for
    the end of the current turn of the event loop and go out together, under the
    handler's lock."""

    current: ClassVar[AccessLog | None] = None  # the one `serve` installed, if any

    def __init__(self, handler: logging.StreamHandler[TextIO], json_lines: bool) -> None:
        self.handler = handler
        self.json_lines = json_lines
        self._pending: list[str] = []

    def request(self, scope: Any, status: int, request_id: str | None) -> None:
        client = scope.get("client")
        path = urllib.parse.quote(scope["path"])
        if scope["query_string"]:
            path = f"{path}?{scope['query_string'].decode('ascii')}"
        address = f"{client[0]}:{int(client[1])}" if client else ""
        message = f'{address} - "{scope["method"]} {path} HTTP/{scope["http_version"]}" {status}'
        if self.json_lines:
            # `JsonFormatter`'s line; the request id needs no escaping (`_VALID_ID`)
            text = json.dumps(message, ensure_ascii=False)
            line = (
                f'{{"time": "{timestamp(time.time())}", "level": "info", '
                f'"logger": "{ACCESS_LOGGER}", "message": {text}'
                + (f', "request_id": "{request_id}"}}' if request_id is not None else "}")
            )
        else:
            line = f"INFO {ACCESS_LOGGER}: {message}"
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        handler = self.handler
        terminator = handler.terminator
        handler.acquire()
        try:
            handler.stream.write(terminator.join(lines) + terminator)
            handler.flush()
        except Exception:  # pragma: no cover - as logging does: never fail a request
            handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
        finally:
            handler.release()


def configure_logging(level: str, log_format: str) -> None:
    """`serve`'s logging: every line to stderr as JSON (with the request id) or plain
    text (`auto`: text when stderr is a terminal), at `level`; the access log written by
    `AccessLog` when `level` lets info through (uvicorn's own access record is then never
    built)."""
    handler = logging.StreamHandler()
    log_format = log_format_for(log_format, handler.stream)
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    access = logging.getLogger(ACCESS_LOGGER)
    if logging.getLogger().isEnabledFor(logging.INFO):
        AccessLog.current = AccessLog(handler, json_lines=log_format == "json")
        # no handler of its own and no propagation: uvicorn sees none and logs nothing
        access.propagate = False
    else:
        release_access_log()


def release_access_log() -> None:
    """Write what the access log holds and hand the access log back to uvicorn."""
    current, AccessLog.current = AccessLog.current, None
    if current is not None:
        current.flush()
    logging.getLogger(ACCESS_LOGGER).propagate = True

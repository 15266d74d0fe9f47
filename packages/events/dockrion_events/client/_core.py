"""What the sync and async clients share: requests, refusals, and the resume state of an
event subscription (which sequence was seen last, how long to wait before reconnecting,
when to give up). No I/O here."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..models import BaseEvent, is_terminal_event, parse_event
from ..runs import Run
from ..sse import SseMessage, SseParser

__all__ = ["ClientError", "ConnectionLostError", "ResumeState", "ServerError"]


class ClientError(Exception):
    """Base of the client's errors."""


class ServerError(ClientError):
    """The server refused: `status` is the HTTP status, `code` the stable error code,
    `message` the readable reason and `details` what the body adds (which field failed, the
    required permission, `retry_after`, ...; None when it adds nothing). `body` is the
    whole decoded body."""

    def __init__(
        self, status: int, code: str, message: str, body: Any = None, details: Any = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.body = body


class ConnectionLostError(ClientError):
    """The stream could not be resumed within the client's `give_up_after` seconds."""


def server_error(status: int, body: Any, text: str) -> ServerError:
    """The error for a refusal, from the runtime's error body
    (`{"success": false, "error", "code", "details"}`), or from a `{"detail": {"message",
    "code", "details"}}` body alone."""
    if isinstance(body, dict):
        nested = body.get("detail")
        if "code" not in body and isinstance(nested, dict):
            body_fields = nested
            message = nested.get("message") or nested.get("error")
        else:
            body_fields = body
            message = body.get("error") or body.get("message")
        code = str(body_fields.get("code") or "HTTP_ERROR")
        details = body_fields.get("details")
        return ServerError(status, code, str(message or text), body, details)
    return ServerError(status, "HTTP_ERROR", text[:200] or f"HTTP {status}", body)


def auth_headers(api_key: str | None, token: str | None, header: str) -> dict[str, str]:
    if api_key is not None and token is not None:
        raise ValueError("give an api_key or a token, not both")
    if api_key is not None:
        return {header: api_key}
    if token is not None:
        return {"Authorization": f"Bearer {token}"}
    return {}


def run_of(body: dict[str, Any]) -> Run:
    return Run.model_validate(body)


# Statuses worth retrying while following a run: the server or its backend is away.
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass
class ResumeState:
    """One subscription to a run's events across any number of connections."""

    from_sequence: int
    give_up_after: float
    max_delay: float
    last: int = -1
    retry_ms: int = 3000
    failures: int = 0
    finished: bool = False
    deadline: float = field(default=0.0)
    parser: SseParser = field(default_factory=SseParser)

    def __post_init__(self) -> None:
        self.last = self.from_sequence - 1
        self.deadline = time.monotonic() + self.give_up_after

    def headers(self) -> dict[str, str]:
        """`Last-Event-ID` once something was seen (resume after it)."""
        return {"Last-Event-ID": str(self.last)} if self.last >= 0 else {}

    def params(self) -> dict[str, str]:
        return (
            {}
            if self.last >= 0 or self.from_sequence <= 0
            else {"from_sequence": str(self.from_sequence)}
        )

    def done(self) -> bool:
        """True once the terminal event was yielded."""
        return self.finished

    def connected(self) -> None:
        self.parser = SseParser()  # a new connection starts a new stream

    def feed(self, chunk: bytes) -> list[BaseEvent]:
        """The new events in `chunk`, each once, in order."""
        events: list[BaseEvent] = []
        for message in self.parser.feed(chunk):
            events.extend(self._event(message))
        return events

    def _event(self, message: SseMessage) -> list[BaseEvent]:
        if message.retry is not None:
            self.retry_ms = message.retry
        if message.id is None or not message.id.isdigit():
            return []  # heartbeats carry no id: not part of the log
        sequence = int(message.id)
        if sequence <= self.last:
            return []  # already yielded: never twice
        self.last = sequence
        self.failures = 0
        self.deadline = time.monotonic() + self.give_up_after
        event = parse_event(message.json())
        self.finished = is_terminal_event(event)
        return [event]

    def next_delay(self, reason: str) -> float:
        """Seconds to wait before reconnecting: the server's `retry:` hint, doubled on each
        failure in a row (with jitter), at most `max_delay`; raises when out of time."""
        if time.monotonic() >= self.deadline:
            raise ConnectionLostError(
                f"gave up resuming after {self.give_up_after:g}s without a new event "
                f"(last sequence {self.last}): {reason}"
            )
        delay = min(self.max_delay, self.retry_ms / 1000 * (2**self.failures))
        self.failures += 1
        jittered = delay * (0.5 + random.random() / 2)  # noqa: S311 - not for secrets
        return float(min(jittered, max(0.0, self.deadline - time.monotonic())))

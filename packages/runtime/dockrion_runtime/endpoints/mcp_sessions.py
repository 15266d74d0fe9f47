"""MCP sessions: who opened each one, at which protocol version, and which run answers
each of its tool calls (what `notifications/cancelled` names).

A session is held by the process that answered its `initialize` (with `--workers N`, route
a session's requests to one worker, as for any stateful MCP server). The registry is
bounded: past `limit` sessions the oldest is forgotten (its client gets 404 and opens a
new one, as the transport asks of it).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["McpSession", "McpSessions"]

# Calls remembered per session for cancelling; the oldest beyond it cannot be cancelled by
# `notifications/cancelled` any more (`DELETE /runs/{run_id}` still can).
_CALLS_KEPT = 1000


@dataclass(slots=True)
class McpSession:
    session_id: str
    owner: str | None
    protocol_version: str
    calls: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def remember(self, request_id: str | int, run_id: str) -> None:
        """The run answering JSON-RPC request `request_id` of this session."""
        self.calls[_key(request_id)] = run_id
        while len(self.calls) > _CALLS_KEPT:
            self.calls.popitem(last=False)

    def run_of(self, request_id: object) -> str | None:
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            return None
        return self.calls.get(_key(request_id))


def _key(request_id: str | int) -> str:
    # "1" and 1 are different JSON-RPC ids
    return f"s:{request_id}" if isinstance(request_id, str) else f"i:{request_id}"


class McpSessions:
    """The sessions this process opened, each visible to its owner only."""

    def __init__(self, limit: int = 10_000) -> None:
        self._sessions: OrderedDict[str, McpSession] = OrderedDict()
        self._limit = limit

    def open(self, owner: str | None, protocol_version: str) -> McpSession:
        session = McpSession(secrets.token_urlsafe(24), owner, protocol_version)
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str, owner: str | None) -> McpSession | None:
        """The session, if it is open and `owner`'s (anyone else's reads as unknown)."""
        session = self._sessions.get(session_id)
        if session is None or not secrets.compare_digest(
            (session.owner or "").encode(), (owner or "").encode()
        ):
            return None
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

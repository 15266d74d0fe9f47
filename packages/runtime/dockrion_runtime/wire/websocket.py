"""WebSocket sessions: a run's log sent as WebSocket text messages, one event per message,
each holding exactly the JSON that Server-Sent Events carry as `data:`.

The handshake is answered only after the caller is known: the route's origin check and
the subprotocol token (`websocket_handshake.py`), authentication, permission and rate
limit run first, and a refusal is the HTTP answer the same caller would get from the HTTP
endpoints (401, 403, 429, with the same JSON body), so the upgrade never completes.
Browsers cannot set headers on a WebSocket; they send the key or token in
`Sec-WebSocket-Protocol` instead, as the subprotocol `dockrion.bearer.<base64url of the
token>` beside `dockrion`, which the server echoes (never the token). The token then
counts as if sent in the header the Dockfile's auth reads; it is never logged and never
reaches agent code. A session has a request id like an HTTP request (the caller's
`X-Request-ID` when sane), named in the handshake's answer, its log lines and the errors
it reports.

Once accepted, a refusal is one JSON message holding the HTTP error body (`success`
false, `error`, `code`, maybe `details`; never a `type`, which only events have), then a
close with code 4000 + the HTTP status of that error (4400 invalid input, 4413 too large,
4404 no such run, ...). A run's terminal event is followed by close 1000; a subscription
that reaches its `timeout` closes with 4001 (the run goes on; resume from the last
sequence received).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dockrion_events import (
    BackendError,
    EventRecord,
    EventsError,
    HeartbeatEvent,
)

from ..asgi_extensions import SEND_TEXTS
from ..auth import Access, Authenticator, AuthFailed, Limiter, Refused, authorize
from ..errors import RuntimeHTTPError, error_body, refusal, status_for
from ..logs import reset_request_id, set_request_id, valid_request_id
from .pump import Ending, follow
from .websocket_handshake import (
    TOKEN_SUBPROTOCOL,
    deny,
    http_view,
    origin_refusal,
    request_id_header,
)

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = [
    "CLOSE_DONE",
    "CLOSE_TIMEOUT",
    "SUBPROTOCOL",
    "TOKEN_SUBPROTOCOL",
    "ClientGone",
    "EventSocket",
    "WebSocketEndpoint",
    "WebSocketHandler",
    "accept",
    "close_code",
    "stream_events",
]

log = logging.getLogger("dockrion.runtime")

SUBPROTOCOL = "dockrion"
CLOSE_DONE = 1000
CLOSE_TIMEOUT = 4001

WebSocketHandler = Callable[[WebSocket, Request], Awaitable[None]]


def close_code(code: str) -> int:
    """The close code of a refusal: 4000 + the HTTP status of its error code."""
    return 4000 + status_for(code)


class ClientGone(Exception):
    """The client closed the socket before the session had anything to do."""


async def accept(websocket: WebSocket) -> None:
    """Complete the handshake, choosing `dockrion` when the client offers it; the answer
    names the session's request id, as HTTP answers do."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None,
        headers=request_id_header(),
    )


async def _refuse(websocket: WebSocket, exc: Exception) -> int:
    """Send the refusal's error body, then close with its code (accepting first if the
    handshake is still open, so that a browser can read why). Returns the close code."""
    _, body, _ = refusal(exc)
    code = body["code"]
    if websocket.application_state == WebSocketState.CONNECTING:
        await accept(websocket)
    if websocket.application_state != WebSocketState.CONNECTED:
        return 1006
    try:
        await websocket.send_text(json.dumps(body))
        await websocket.close(close_code(code), code)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return 1006
    return close_code(code)


class EventSocket(WebSocket):
    """Starlette's WebSocket with `send_texts`: a batch of text messages in one ASGI
    message where the server offers it (`dockrion-runtime serve`: one write for the batch,
    as SSE does), else one `websocket.send` each."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope, receive, send)
        self._send_texts = send if SEND_TEXTS in scope.get("extensions", {}) else None

    async def send_texts(self, texts: list[str]) -> None:
        if self._send_texts is None or self.application_state != WebSocketState.CONNECTED:
            for text in texts:
                await self.send_text(text)
            return
        try:
            await self._send_texts({"type": SEND_TEXTS, "texts": texts})
        except OSError:
            self.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from None


class WebSocketEndpoint:
    """The ASGI app of one WebSocket row of the route table: origin, authentication,
    permission and rate limit before the handshake is answered, then the handler with
    the caller's `Request` view; refusals and the close code are counted."""

    def __init__(
        self,
        path: str,
        handler: WebSocketHandler,
        auth: Authenticator,
        access: Access,
        permission: str | None,
        limiter: Limiter | None,
        authenticate: bool,
    ) -> None:
        self.path = path
        self.handler = handler
        self.auth = auth
        self.access = access
        self.permission = permission
        self.limiter = limiter
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ended: int | None = None

        async def watch_send(message: Message) -> None:
            nonlocal ended
            if message["type"] == "websocket.close" and ended is None:
                ended = message.get("code", 1000)
            elif message["type"] == "websocket.http.response.start":
                ended = message["status"]
            await send(message)

        async def watch_receive() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] == "websocket.disconnect" and ended is None:
                ended = message.get("code", 1005)
            return message

        websocket = EventSocket(scope, watch_receive, watch_send)
        runtime: Runtime = scope["app"].state.runtime
        # One request id per session, as an HTTP request has: the caller's `X-Request-ID`
        # when sane, in the handshake's answer, the logs, and the errors callers see.
        supplied = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                supplied = value  # the last one, as on HTTP
        token = set_request_id(valid_request_id(supplied))
        try:
            await self._session(websocket, runtime)
        finally:
            reset_request_id(token)
            metrics = runtime.metrics
            metrics.websocket_sessions.labels(
                metrics.agent, self.path, str(ended if ended is not None else 1006)
            ).inc()

    async def _session(self, websocket: WebSocket, runtime: Runtime) -> None:
        foreign = origin_refusal(websocket, runtime)
        if foreign is not None:
            await deny(websocket, JSONResponse(error_body(foreign, "FORBIDDEN"), 403))
            return
        try:
            request = http_view(websocket, self.auth)
            if self.authenticate:
                await authorize(request, self.auth, self.access, self.permission, self.limiter)
        except (AuthFailed, Refused, RuntimeHTTPError) as exc:
            status, body, headers = refusal(exc)
            await deny(websocket, JSONResponse(body, status, headers=headers or None))
            return
        try:
            await self.handler(websocket, request)
        except ClientGone:
            return
        except (RuntimeHTTPError, EventsError) as exc:
            await _refuse(websocket, exc)
        except Exception as exc:
            log.error("unhandled error on WebSocket %s", self.path, exc_info=exc)
            await _refuse(websocket, exc)


def _action(message: Message) -> str | None:
    """The `action` of a client message such as `{"action": "cancel"}`, else None."""
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes")
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    action = value.get("action") if isinstance(value, dict) else None
    return action if isinstance(action, str) else None


async def stream_events(
    websocket: WebSocket,
    runtime: Runtime,
    batches: AsyncIterator[list[EventRecord]],
    run_id: str,
    *,
    on_disconnect: Callable[[], None] | None = None,
    on_cancel: Callable[[], Awaitable[None]] | None = None,
    timeout: float | None = None,
) -> None:
    """Send a run's events over an accepted socket until its terminal event, then close
    1000. Meanwhile `{"action": "cancel"}` calls `on_cancel` (None: the caller may not
    cancel, and is told so) and a client that closes the socket calls `on_disconnect`.
    Idle spells send `heartbeat` events when the events filter allows them (the server's
    protocol pings keep the socket alive either way)."""
    metrics = runtime.metrics
    agent = runtime.settings.name
    heartbeat_events = runtime.settings.events_filter.allows_heartbeats
    sent = metrics.websocket_events.labels(agent)

    async def listen() -> None:
        """Answer the client's messages until it closes the socket."""
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                action = _action(message)
                if action == "cancel" and on_cancel is not None:
                    await on_cancel()
                    continue
                if action == "cancel":
                    answer = error_body("Only the run's owner may cancel it", "FORBIDDEN")
                else:
                    answer = error_body(
                        'Unknown message: the only one accepted is {"action": "cancel"}',
                        "VALIDATION_ERROR",
                    )
                await websocket.send_text(json.dumps(answer))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def write(batch: list[EventRecord]) -> None:
        if isinstance(websocket, EventSocket):
            await websocket.send_texts([record.data for record in batch])
        else:
            for record in batch:
                await websocket.send_text(record.data)
        sent.inc(len(batch))

    async def idle(last: int) -> None:
        if heartbeat_events:
            # Not stored: the sequence is the last one sent, for information.
            await websocket.send_text(HeartbeatEvent(run_id=run_id, sequence=last).to_json())

    metrics.websockets.labels(agent).inc()
    try:
        ending = await follow(
            batches,
            write=write,
            idle=idle,
            departed=listen,
            gone_errors=(WebSocketDisconnect, OSError),
            on_disconnect=on_disconnect,
            timeout=timeout,
        )
    finally:
        metrics.websockets.labels(agent).dec()
    if ending is None:
        return  # the client left
    code, reason = CLOSE_DONE, ""
    if ending is Ending.TIMEOUT:
        code, reason = CLOSE_TIMEOUT, "subscription timeout"  # the run goes on
    elif isinstance(ending, BackendError):
        # The run may be fine: the client resumes once the backend is back.
        _, body, _ = refusal(ending)
        code, reason = close_code(body["code"]), body["code"]
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if isinstance(ending, BackendError):
            await websocket.send_text(json.dumps(body))
        await websocket.close(code, reason)

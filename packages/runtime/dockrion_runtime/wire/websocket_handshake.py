"""Who may open a WebSocket, decided before the handshake is answered: the page's origin
(browsers apply no CORS to WebSockets), and the caller's key or token, which a browser
cannot send as a header and sends as the subprotocol `dockrion.bearer.<base64url>`
instead. A refusal answers the handshake with the HTTP response the HTTP endpoints would
give, so the upgrade never completes.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from ..auth import Authenticator, AuthFailed
from ..auth.api_keys import ApiKeyAuth
from ..logs import current_request_id
from ..request.headers import cors_options, security_headers

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["TOKEN_SUBPROTOCOL", "deny", "http_view", "origin_refusal", "subprotocol_token"]

TOKEN_SUBPROTOCOL = "dockrion.bearer."  # noqa: S105 - a prefix, not a secret


def request_id_header() -> list[tuple[bytes, bytes]]:
    """The session's request id as a response header (none outside a session)."""
    request_id = current_request_id()
    return [] if request_id is None else [(b"x-request-id", request_id.encode())]


async def deny(websocket: WebSocket, response: Response) -> None:
    """Answer the handshake with an HTTP response (the upgrade never completes), with the
    request id and the security headers every HTTP answer carries."""
    runtime: Runtime = websocket.scope["app"].state.runtime
    present = {name for name, _ in response.raw_headers}
    response.raw_headers += [
        item
        for item in security_headers(runtime.settings.security_headers)
        if item[0] not in present
    ]
    response.raw_headers += request_id_header()
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:  # a server without the denial extension answers 403 itself
        await websocket.close(1008)


def subprotocol_token(subprotocols: list[str]) -> str | None:
    """The key or token a browser sent as `dockrion.bearer.<base64url>`, if any."""
    for entry in subprotocols:
        if entry.startswith(TOKEN_SUBPROTOCOL):
            encoded = entry[len(TOKEN_SUBPROTOCOL) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode("ascii")
            except (binascii.Error, ValueError):
                raise AuthFailed(
                    f"The '{TOKEN_SUBPROTOCOL}' subprotocol must carry the key or token in "
                    "base64url",
                    "INVALID_CREDENTIALS",
                ) from None
    return None


def http_view(websocket: WebSocket, auth: Authenticator) -> Request:
    """The handshake as an HTTP GET request, as authenticators and endpoints read it: a
    token sent as a subprotocol moved into the header the Dockfile's auth reads, and the
    `Sec-WebSocket-Protocol` header dropped so that nothing downstream sees the token."""
    scope = websocket.scope
    headers = [(n, v) for n, v in scope["headers"] if n != b"sec-websocket-protocol"]
    token = subprotocol_token(list(scope.get("subprotocols") or []))
    if token is not None:
        if isinstance(auth, ApiKeyAuth):
            name, value = auth.header.lower().encode("latin-1"), token
        else:
            name, value = b"authorization", f"Bearer {token}"
        headers = [(n, v) for n, v in headers if n != name] + [(name, value.encode("latin-1"))]
    return Request({**scope, "type": "http", "method": "GET", "headers": headers})


def origin_refusal(websocket: WebSocket, runtime: Runtime) -> str | None:
    """Why a browser page's origin may not open this socket, or None. Browsers apply no
    CORS to WebSockets, so the server checks `Origin` against `expose.cors.origins` (any
    origin when none are configured) and the page's own host."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return None  # not a browser
    allowed = cors_options(runtime.settings.cors)["allow_origins"]
    if "*" in allowed or origin in allowed:
        return None
    if urlsplit(origin).netloc == websocket.headers.get("host"):
        return None
    return f"Origin {origin[:100]!r} may not open WebSockets here (expose.cors.origins)"

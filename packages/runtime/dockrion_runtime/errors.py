"""Errors the runtime returns, and the one table that turns an error code into a status.

Every refusal is an exception carrying a stable machine `code`: the runtime's own
`RuntimeHTTPError`, the event layer's `EventsError` subclasses (each has `.code`), and
`AuthFailed`. The handlers below turn them into responses, so endpoints raise and never
build error responses by hand. A 5xx body never carries a traceback: the log has the
details, under the request id that the body names.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from dockrion_events import BackendError, EventsError, EventsExpiredError

from .logs import current_request_id

__all__ = [
    "EXCEPTION_HANDLERS",
    "STATUS_BY_CODE",
    "VERBOSE_HINT",
    "AuthFailed",
    "Refused",
    "RuntimeHTTPError",
    "agent_failure",
    "error_body",
    "internal_error",
    "refusal",
    "status_for",
]

log = logging.getLogger("dockrion.runtime")

STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 400,
    "BAD_REQUEST": 400,
    "POLICY_VIOLATION": 400,
    "AUTH_ERROR": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "THREAD_BUSY": 409,
    "EVENTS_EXPIRED": 410,
    "UPGRADE_REQUIRED": 426,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "TOO_MANY_SUBSCRIBERS": 429,
    "RATE_LIMIT_EXCEEDED": 429,
    "TOO_MANY_LOGINS": 429,
    "TOO_MANY_RUNS": 429,
    "TOO_MANY_STREAMS": 429,
    "BUDGET_EXHAUSTED": 429,
    "BUDGET_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "INVALID_OUTPUT": 500,
    "AGENT_EXECUTION_ERROR": 500,
    "AGENT_NOT_READY": 503,
    "MISSING_SECRET": 503,
    "SERVER_BUSY": 503,
    "BACKEND_UNAVAILABLE": 503,
    "BACKEND_ERROR": 503,
    "AUTH_UNAVAILABLE": 503,
    "NOT_IMPLEMENTED": 501,
    "RUN_TIMEOUT": 504,
    "HTTP_VERSION_NOT_SUPPORTED": 505,
}


def status_for(code: str) -> int:
    """The HTTP status of an error code; an unknown code is a server error."""
    return STATUS_BY_CODE.get(code, 500)


# Refusals of who the caller is or what it may do: their bodies also hold the `detail`
# object of the auth errors' documented shape, for clients that read that.
_DETAIL_STATUSES = frozenset({401, 403, 429})


def error_body(
    message: str, code: str, details: Any = None, reason: str | None = None
) -> dict[str, Any]:
    """The one error body: `{"success": false, "error", "code", "details"}` (`details` is
    null when the error has none). A 401, 403 or 429 also carries
    `"detail": {"message", "code", "error", "details"}` with the same facts, `error` being
    `reason` (a finer cause such as `INVALID_CREDENTIALS`) or the code."""
    body: dict[str, Any] = {"success": False, "error": message, "code": code, "details": details}
    if status_for(code) in _DETAIL_STATUSES:
        body["detail"] = {
            "message": message,
            "code": code,
            "error": reason or code,
            "details": details,
        }
    return body


class RuntimeHTTPError(Exception):
    """A refusal: `{"success": false, "error", "code", "details"}` with the code's status
    (and `headers` on the answer, such as `Retry-After`)."""

    def __init__(
        self,
        message: str,
        code: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return status_for(self.code)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.code, self.details)


class AuthFailed(Exception):
    """401: the caller did not prove who it is. The body is the one error body (code
    `AUTH_ERROR`, `details.reason` the finer cause such as `INVALID_CREDENTIALS`) plus the
    `detail` object of the auth errors' documented shape."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.message = message
        self.error = error

    def body(self) -> dict[str, Any]:
        return error_body(self.message, "AUTH_ERROR", {"reason": self.error}, self.error)


class Refused(Exception):
    """A known caller refused (403 FORBIDDEN, 429 RATE_LIMIT_EXCEEDED): the one error body
    plus the `detail` object of the auth errors' documented shape, as `AuthFailed`."""

    def __init__(
        self,
        message: str,
        code: str,
        error: str,
        details: dict[str, object],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error = error
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.code, self.details, self.error)


# Where an answer that names only an exception's type says how to see its message.
VERBOSE_HINT = (
    "To return the message too, set 'observability: {verbose_errors: true}' in the "
    "Dockfile (development only)"
)


def agent_failure(exc: BaseException, *, verbose: bool) -> RuntimeHTTPError:
    """What a caller learns when the agent raised: the exception's type, a stable code and
    the request id under which the log holds the message. The message itself reaches the
    caller only when `verbose` (an explicit opt-in): it may carry anything the agent saw."""
    request_id = current_request_id()
    kind = type(exc).__name__
    if verbose:
        message = f"Handler invocation failed: {kind}: {exc}"
    else:
        message = (
            f"Agent raised {kind}; the server log has the details (request id {request_id}). "
            + VERBOSE_HINT
        )
    return RuntimeHTTPError(
        message, "AGENT_EXECUTION_ERROR", {"error_type": kind, "request_id": request_id}
    )


def refusal(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers a caller is answered with for `exc`: the one mapping
    that HTTP responses and WebSocket refusals (before or after the handshake) share. A 5xx
    body names the request id, never the exception's text."""
    headers: dict[str, str] = {}
    if isinstance(exc, AuthFailed):
        return 401, exc.body(), {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Refused):
        return status_for(exc.code), exc.body(), exc.headers
    if isinstance(exc, RuntimeHTTPError):
        status, body, headers = exc.status, exc.body(), exc.headers
    elif isinstance(exc, BackendError):
        code = "BACKEND_UNAVAILABLE"
        status, body = status_for(code), error_body(f"Events backend unavailable: {exc}", code)
    elif isinstance(exc, EventsError):
        status, body = status_for(exc.code), error_body(exc.message, exc.code)
        if isinstance(exc, EventsExpiredError):
            body["first_available"] = exc.first_available
    else:
        request_id = current_request_id()
        code = "INTERNAL_ERROR"
        status, body = 500, error_body(f"Internal server error (request id {request_id})", code)
    if status >= 500:
        body["request_id"] = current_request_id()
    return status, body, headers


async def _refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, BackendError):
        log.error("events backend error on %s %s: %s", request.method, request.url.path, exc)
    status, body, headers = refusal(exc)
    return JSONResponse(body, status_code=status, headers=headers or None)


# What Starlette itself refuses (no route, wrong method), in the same body as ours.
_CODE_BY_STATUS = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (one route per method and path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"No route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"Method {request.method} is not allowed here; allowed: {', '.join(allowed)}"
    else:
        message = str(exc.detail)
    return JSONResponse(
        error_body(message, code), status_code=exc.status_code, headers=headers or None
    )


def internal_error() -> JSONResponse:
    """The 500 of an exception nothing handled: the request id, never a traceback."""
    status, body, _ = refusal(Exception())
    return JSONResponse(body, status_code=status)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error()


EXCEPTION_HANDLERS = {
    HTTPException: _http_exception,
    RuntimeHTTPError: _refusal,
    EventsError: _refusal,
    AuthFailed: _refusal,
    Refused: _refusal,
    Exception: _unexpected_error,
}

"""The one ASGI layer every HTTP request passes through, between uvicorn and the endpoint.

It does in one place, wrapping `send` once, what a stack of middleware would do each with
its own wrapper: the request id (the caller's `X-Request-ID` when sane, or a new one, set
for the logs and echoed on the response), CORS as `expose.cors` says (Starlette's
`CORSMiddleware` rules: its preflight answer, its headers on other responses), the
security headers a response does not set itself, the Prometheus metrics (labelled with the
route template), the access log line, and the error handlers (`errors`): a refusal
becomes its JSON body, an exception nothing handled becomes a 500 naming the request id,
inside all of the above. A request for a fixed path goes straight to its endpoint, without
the router's walk through every route or Starlette's own wrapper around the endpoint;
anything else (path parameters, a wrong method, a mounted app, a `root_path`) goes through
the Starlette router as before.

WebSocket and lifespan scopes go through Starlette's own stack, untouched.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from starlette._exception_handler import _lookup_exception_handler
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import internal_error
from ..logs import AccessLog, reset_request_id, set_request_id, valid_request_id
from ..metrics import RuntimeMetrics

__all__ = ["RequestLayer", "RuntimeApp"]

log = logging.getLogger("dockrion.runtime")

_VARY = b"vary"


class RequestLayer:
    """See the module's docstring. `other` serves the scopes that are not HTTP."""

    def __init__(
        self,
        router: Router,
        other: ASGIApp,
        *,
        handlers: Mapping[Any, Any],
        metrics: RuntimeMetrics,
        security_headers: list[tuple[bytes, bytes]],
        cors: Mapping[str, Any],
    ) -> None:
        self.router = router
        self.other = other
        self.handlers = dict(handlers)
        # What Starlette's exception middleware leaves in the scope for the handlers each
        # route applies itself (`request_response`).
        self._scope_handlers: tuple[dict[Any, Any], dict[int, Any]] = (self.handlers, {})
        self.metrics = metrics
        self.security = security_headers
        self.cors = CORSMiddleware(_unused, **cors)
        self._cors_simple = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.cors.simple_headers.items()
        ]
        routes = [route for route in router.routes if isinstance(route, Route)]
        self._templated = [route for route in routes if route.param_convertors]
        self._fixed = _fixed_routes(router)
        self._active = metrics.active.labels(metrics.agent)
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.other(scope, receive, send)
            return
        supplied = origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                supplied = value  # the last one, as before
            elif name == b"origin" and origin is None:
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight = value
        request_id = valid_request_id(supplied)
        token = set_request_id(request_id)
        security = self.security
        access = AccessLog.current
        answer = _Answer()

        async def respond(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = status = message["status"]
                headers = list(message.get("headers", ()))
                if not answered:  # a preflight answer carries its own CORS headers
                    self._cors_headers(headers, origin)
                if security:
                    present = {name.lower() for name, _ in headers}
                    headers += [item for item in security if item[0] not in present]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
                if access is not None:
                    access.request(scope, status, request_id)
            await send(message)

        answered = preflight is not None and origin is not None and scope["method"] == "OPTIONS"
        try:
            if answered:
                # Answered here, like CORSMiddleware does, before routing and metrics.
                response = self.cors.preflight_response(request_headers=Headers(scope=scope))
                await response(scope, receive, respond)
                return
            await self._counted(scope, receive, respond, answer)
        finally:
            reset_request_id(token)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, answer: _Answer) -> None:
        """The request, counted and timed under its route template."""
        route: Route | None = None
        if not scope.get("root_path"):
            route = self._fixed.get((scope["path"], scope["method"]))
        endpoint = route.path if route is not None else self._endpoint(scope)
        started = time.perf_counter()
        self._active.inc()
        try:
            scope["starlette.exception_handlers"] = self._scope_handlers
            try:
                if route is not None:
                    scope.setdefault("router", self.router)
                    scope["route"] = route
                    scope["endpoint"] = route.endpoint
                    scope["path_params"] = dict(scope.get("path_params", {}))
                    # what `request_response` does, minus its own send wrapper: this
                    # layer applies the same handlers to what the endpoint raises
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                else:
                    await self.router(scope, receive, send)
            except Exception as exc:
                await self._failed(exc, scope, receive, send, answer.status is not None)
        finally:
            self._active.dec()
            status = 500 if answer.status is None else answer.status
            self._count(endpoint, scope["method"], status, time.perf_counter() - started)

    async def _failed(
        self, exc: Exception, scope: Scope, receive: Receive, send: Send, sent: bool
    ) -> None:
        """An exception out of the router or an endpoint: its handler's answer, or a 500
        while the request id is still set (too late for either once the response began:
        the server then closes the connection)."""
        handler: Any = _lookup_exception_handler(self.handlers, exc)
        if sent:
            if handler is not None:
                raise RuntimeError(
                    "Caught handled exception, but response already started"
                ) from exc
            raise exc
        try:
            if handler is None:
                raise exc
            response = await handler(Request(scope, receive, send), exc)
            exc.__traceback__ = None
        except Exception as unexpected:
            log.error(
                "unhandled error on %s %s", scope["method"], scope["path"], exc_info=unexpected
            )
            response = internal_error()
        await response(scope, receive, send)

    def _endpoint(self, scope: Scope) -> str:
        """The metrics label of a request no fixed route took: the template of the route
        that matches it fully, or "unmatched"."""
        routes = self._templated if not scope.get("root_path") else self.router.routes
        for route in routes:
            if isinstance(route, Route) and route.matches(scope)[0] == Match.FULL:
                return route.path
        return "unmatched"

    def _count(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        counter = self._counters.get(key)
        metrics = self.metrics
        if counter is None:
            counter = self._counters[key] = metrics.requests.labels(
                metrics.agent, metrics.version, endpoint, method, str(status)
            )
        counter.inc()
        latency = self._latencies.get(endpoint)
        if latency is None:
            latency = self._latencies[endpoint] = metrics.latency.labels(
                metrics.agent, metrics.version, endpoint
            )
        latency.observe(seconds)

    def _cors_headers(self, headers: list[tuple[bytes, bytes]], origin: str | None) -> None:
        """What CORSMiddleware does to a response's headers, in place."""
        cors = self.cors
        if origin is not None:
            for name, value in self._cors_simple:
                _set(headers, name, value)
        if origin is not None and (
            (cors.allow_all_origins and cors.allow_credentials)
            or (not cors.allow_all_origins and cors.is_allowed_origin(origin=origin))
        ):
            _set(headers, b"access-control-allow-origin", origin.encode("latin-1"))
        vary = [value for name, value in headers if name == _VARY]
        _set(headers, _VARY, b", ".join([*vary, b"Origin"]))


class _Answer:
    """What the response has said so far: its status once it started."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status: int | None = None


def _set(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """`MutableHeaders.__setitem__`: the first header of that name takes the value, any
    others go; appended when there is none."""
    found = [index for index, (key, _) in enumerate(headers) if key == name]
    if not found:
        headers.append((name, value))
        return
    headers[found[0]] = (name, value)
    for index in reversed(found[1:]):
        del headers[index]


def _fixed_routes(router: Router) -> dict[tuple[str, str], Route]:
    """(path, method) -> the route the router picks for it, for every route without path
    parameters that the router would pick (no earlier route matching the same request)."""
    fixed: dict[tuple[str, str], Route] = {}
    for route in router.routes:
        if not isinstance(route, Route) or route.param_convertors:
            continue
        if not inspect.iscoroutinefunction(route.endpoint):
            continue  # an ASGI app or a sync function: the router serves it
        for method in route.methods or ():
            probe = {"type": "http", "path": route.path, "method": method, "root_path": ""}
            first = next(r for r in router.routes if r.matches(probe)[0] == Match.FULL)
            if first is route:
                fixed.setdefault((route.path, method), route)
    return fixed


async def _unused(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise AssertionError("the CORS rules are used, not the middleware")


class RuntimeApp(Starlette):
    """Starlette serving HTTP through one `RequestLayer` (built by `create_app`), and
    WebSocket and lifespan scopes through Starlette's own stack."""

    def __init__(self, *, layer_options: Mapping[str, Any], **options: Any) -> None:
        self.layer_options = dict(layer_options)  # RequestLayer's metrics, headers, cors
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        other = super().build_middleware_stack()
        handlers = {key: value for key, value in self.exception_handlers.items()}
        handlers.pop(Exception, None)  # the layer's own last resort
        return RequestLayer(self.router, other, handlers=handlers, **self.layer_options)

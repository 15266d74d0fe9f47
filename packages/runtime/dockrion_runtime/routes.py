"""The route table: every endpoint of the runtime, in one place.

Each row says the method, the path, the handler, its kind (an HTTP route, or a WebSocket
route: a handshake is a GET), whether the caller must authenticate,
the permission a caller needs when `auth.roles` is configured, when the route is served
(from the Dockfile) and whether it is listed (welcome page and OpenAPI document). The
Starlette routes, the OpenAPI paths, the welcome page, the metrics labels, authentication
and the permission table (docs/security.md) are all derived from it. A public row with a
permission (`/metrics`, the API description) asks for authentication only when roles are
configured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from .auth import Access, Authenticator, Limiter, protect
from .endpoints import ag_ui, invoke, playground, runs, service, sockets, threads, usage
from .settings import RuntimeSettings
from .wire.websocket import WebSocketEndpoint

__all__ = ["ROUTE_TABLE", "Endpoint", "needs_auth", "served", "starlette_routes"]

Handler = Callable[..., Awaitable[Any]]  # (Request) for HTTP rows, (WebSocket, Request) else


def _always(settings: RuntimeSettings) -> bool:
    return True


def _rest(settings: RuntimeSettings) -> bool:
    return settings.rest


def _sse(settings: RuntimeSettings) -> bool:
    return settings.sse


def _runs(settings: RuntimeSettings) -> bool:
    return settings.async_runs


def _ag_ui(settings: RuntimeSettings) -> bool:
    return settings.ag_ui.enabled


def _websocket(settings: RuntimeSettings) -> bool:
    return settings.websocket


def _websocket_runs(settings: RuntimeSettings) -> bool:
    return settings.websocket and settings.async_runs


def _playground(settings: RuntimeSettings) -> bool:
    return settings.playground


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    protected: bool = False
    enabled: Callable[[RuntimeSettings], bool] = _always
    listed: bool = True  # on the welcome page and in the OpenAPI document
    permission: str | None = None  # checked when auth.roles is configured
    # "websocket": the handler takes the socket and the handshake as a Request; a plain
    # GET of the path (no upgrade) is answered 426 after the same checks.
    kind: Literal["http", "websocket"] = "http"


INVOKE = "invoke"
DOCS = "read_docs"

ROUTE_TABLE: tuple[Endpoint, ...] = (
    Endpoint("GET", "/", service.welcome, listed=False),
    Endpoint("GET", "/openapi.json", service.openapi, listed=False, permission=DOCS),
    Endpoint("GET", "/docs", service.docs, listed=False, permission=DOCS),
    Endpoint("GET", "/health", service.health),
    Endpoint("GET", "/ready", service.ready),
    Endpoint("GET", "/info", service.info),
    Endpoint("GET", "/schema", service.schema, permission=DOCS),
    Endpoint("GET", "/metrics", service.metrics, permission="view_metrics"),
    # The playground: public static files; the API calls it makes carry the user's key
    Endpoint("GET", "/playground", playground.page, listed=False, enabled=_playground),
    Endpoint("GET", "/playground/{name}", playground.asset, listed=False, enabled=_playground),
    # what the caller used today, and what is left of its budgets
    Endpoint("GET", "/usage", usage.get_usage, protected=True, permission=INVOKE),
    # Pattern A: one request, one run
    Endpoint("POST", "/invoke", invoke.invoke, protected=True, permission=INVOKE, enabled=_rest),
    Endpoint(
        "POST",
        "/invoke/stream",
        invoke.invoke_stream,
        protected=True,
        permission=INVOKE,
        enabled=_sse,
    ),
    # Pattern B: background runs
    Endpoint("POST", "/runs", runs.create_run, protected=True, permission=INVOKE, enabled=_runs),
    Endpoint("GET", "/runs", threads.list_runs, protected=True, permission=INVOKE, enabled=_runs),
    Endpoint(
        "GET", "/runs/{run_id}", runs.get_run, protected=True, permission=INVOKE, enabled=_runs
    ),
    Endpoint(
        "GET",
        "/runs/{run_id}/events",
        runs.run_events,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    Endpoint(
        "DELETE",
        "/runs/{run_id}",
        runs.cancel_run,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/resume",
        runs.resume_run,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    # conversation threads: the caller's own, like runs
    Endpoint(
        "GET",
        "/threads/{thread_id}",
        threads.get_thread,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    Endpoint(
        "GET",
        "/threads/{thread_id}/runs",
        threads.thread_runs,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    Endpoint(
        "DELETE",
        "/threads/{thread_id}",
        threads.delete_thread,
        protected=True,
        permission=INVOKE,
        enabled=_runs,
    ),
    # WebSocket views of the same run logs (expose.streaming: websocket)
    Endpoint(
        "GET",
        "/invoke/ws",
        sockets.invoke_ws,
        protected=True,
        permission=INVOKE,
        enabled=_websocket,
        kind="websocket",
    ),
    Endpoint(
        "GET",
        "/runs/{run_id}/ws",
        sockets.run_ws,
        protected=True,
        permission=INVOKE,
        enabled=_websocket_runs,
        kind="websocket",
    ),
    # AG-UI: agent front ends, on background runs
    Endpoint("POST", "/ag-ui", ag_ui.run_agent, protected=True, permission=INVOKE, enabled=_ag_ui),
    Endpoint(
        "GET",
        "/ag-ui/runs/{run_id}",
        ag_ui.replay_run,
        protected=True,
        permission=INVOKE,
        enabled=_ag_ui,
    ),
)


def served(settings: RuntimeSettings) -> list[Endpoint]:
    """The rows of the table this Dockfile serves."""
    return [endpoint for endpoint in ROUTE_TABLE if endpoint.enabled(settings)]


def needs_auth(endpoint: Endpoint, access: Access) -> bool:
    """Whether callers of this row must authenticate: protected rows always, rows with a
    permission once roles are enforced."""
    return endpoint.protected or (access.enforced and endpoint.permission is not None)


def starlette_routes(
    endpoints: list[Endpoint],
    auth: Authenticator,
    access: Access | None = None,
    limiter: Limiter | None = None,
) -> list[BaseRoute]:
    """One Starlette `Route` per row (Starlette picks among routes of one path by method),
    rows that need it behind `auth` and their permission, plus the offline Swagger UI
    assets. A WebSocket row is a `WebSocketRoute` making the same checks before the
    handshake is answered, and a `Route` answering a plain GET 426."""
    access = access or Access(None)
    routes: list[BaseRoute] = []
    for endpoint in endpoints:
        authenticate = needs_auth(endpoint, access)
        handler = endpoint.handler
        if endpoint.kind == "websocket":
            socket = WebSocketEndpoint(
                endpoint.path, handler, auth, access, endpoint.permission, limiter, authenticate
            )
            routes.append(WebSocketRoute(endpoint.path, socket, name=f"WS {endpoint.path}"))
            handler = sockets.upgrade_required
        routes.append(
            Route(
                endpoint.path,
                protect(handler, auth, access, endpoint.permission, limiter)
                if authenticate
                else handler,
                methods=[endpoint.method],
                name=f"{endpoint.method} {endpoint.path}",
            )
        )
    routes.append(
        Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    )
    return routes

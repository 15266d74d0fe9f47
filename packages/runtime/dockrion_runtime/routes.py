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
from dataclasses import dataclass, replace
from typing import Any, Literal

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from .auth import Access, Authenticator, Limiter, protect
from .endpoints import (
    a2a,
    a2a_card,
    ag_ui,
    invoke,
    lg_assistants,
    lg_runs,
    lg_threads,
    mcp,
    playground,
    runs,
    service,
    sockets,
    threads,
    usage,
)
from .settings import RuntimeSettings
from .wire.websocket import WebSocketEndpoint

__all__ = [
    "LANGGRAPH_PREFIX",
    "ROUTE_TABLE",
    "Endpoint",
    "needs_auth",
    "served",
    "starlette_routes",
]

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


def _mcp(settings: RuntimeSettings) -> bool:
    return settings.mcp.enabled


def _mcp_path(settings: RuntimeSettings) -> str:
    return settings.mcp.path


def _a2a(settings: RuntimeSettings) -> bool:
    return settings.a2a.enabled


def _websocket(settings: RuntimeSettings) -> bool:
    return settings.websocket


def _websocket_runs(settings: RuntimeSettings) -> bool:
    return settings.websocket and settings.async_runs


def _langgraph(settings: RuntimeSettings) -> bool:
    return settings.langgraph_api.enabled


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
    # The Dockfile's path for this row, when it has one (`path` is then the default).
    path_from: Callable[[RuntimeSettings], str] | None = None


INVOKE = "invoke"
DOCS = "read_docs"
# The LangGraph Server API's rows are written under the default prefix; `served` moves
# them under the Dockfile's `expose.langgraph_api.prefix`.
LANGGRAPH_PREFIX = "/lg"


def _lg(method: str, path: str, handler: Handler, *, protected: bool = True) -> Endpoint:
    return Endpoint(
        method,
        LANGGRAPH_PREFIX + path,
        handler,
        protected=protected,
        permission=INVOKE if protected else None,
        enabled=_langgraph,
    )


_LANGGRAPH_ROUTES: tuple[Endpoint, ...] = (
    _lg("GET", "/ok", lg_assistants.ok, protected=False),
    _lg("GET", "/info", lg_assistants.info, protected=False),
    _lg("POST", "/assistants/search", lg_assistants.search),
    _lg("GET", "/assistants/{assistant_id}", lg_assistants.get_assistant),
    _lg("GET", "/assistants/{assistant_id}/schemas", lg_assistants.assistant_schemas),
    _lg("GET", "/assistants/{assistant_id}/graph", lg_assistants.assistant_graph),
    _lg("POST", "/threads", lg_threads.create_thread),
    _lg("POST", "/threads/search", lg_threads.search_threads),
    _lg("GET", "/threads/{thread_id}", lg_threads.get_thread),
    _lg("DELETE", "/threads/{thread_id}", lg_threads.delete_thread),
    _lg("GET", "/threads/{thread_id}/state", lg_threads.thread_state),
    _lg("POST", "/threads/{thread_id}/history", lg_threads.thread_history),
    _lg("POST", "/threads/{thread_id}/runs/stream", lg_runs.stream_run),
    _lg("POST", "/threads/{thread_id}/runs/wait", lg_runs.wait_run),
    _lg("POST", "/threads/{thread_id}/runs", lg_runs.create_run),
    _lg("GET", "/threads/{thread_id}/runs", lg_runs.list_runs),
    _lg("GET", "/threads/{thread_id}/runs/{run_id}", lg_runs.get_run),
    _lg("GET", "/threads/{thread_id}/runs/{run_id}/stream", lg_runs.join_stream),
    _lg("GET", "/threads/{thread_id}/runs/{run_id}/join", lg_runs.join_run),
    _lg("POST", "/threads/{thread_id}/runs/{run_id}/cancel", lg_runs.cancel_run),
    _lg("POST", "/runs/stream", lg_runs.stateless_stream),
    _lg("POST", "/runs/wait", lg_runs.stateless_wait),
)

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
    # MCP: the agent as one tool over Streamable HTTP, at `expose.mcp.path`
    *(
        Endpoint(
            method,
            "/mcp",
            handler,
            protected=True,
            permission=INVOKE,
            enabled=_mcp,
            path_from=_mcp_path,
        )
        for method, handler in (
            ("POST", mcp.mcp_post),
            ("GET", mcp.mcp_get),
            ("DELETE", mcp.mcp_delete),
        )
    ),
    # A2A: other agents, on background runs; the agent card is public like any discovery
    Endpoint("GET", "/.well-known/agent-card.json", a2a_card.agent_card, enabled=_a2a),
    Endpoint("POST", "/a2a", a2a.rpc, protected=True, permission=INVOKE, enabled=_a2a),
    # The LangGraph Server API, for LangGraph's clients (expose.langgraph_api)
    *_LANGGRAPH_ROUTES,
)


def served(settings: RuntimeSettings) -> list[Endpoint]:
    """The rows of the table this Dockfile serves, at the paths it gives them (MCP at
    `expose.mcp.path`, the LangGraph API under its prefix)."""
    prefix = settings.langgraph_api.prefix
    rows: list[Endpoint] = []
    for endpoint in ROUTE_TABLE:
        if not endpoint.enabled(settings):
            continue
        if endpoint.path_from is not None:
            endpoint = replace(endpoint, path=endpoint.path_from(settings))
        elif endpoint.enabled is _langgraph and prefix != LANGGRAPH_PREFIX:
            endpoint = replace(endpoint, path=prefix + endpoint.path.removeprefix(LANGGRAPH_PREFIX))
        rows.append(endpoint)
    return rows


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

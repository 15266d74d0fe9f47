"""The route table: every endpoint of the runtime, in one place.

Each row says the method, the path, the handler, whether the caller must authenticate,
when the route is served (from the Dockfile) and whether it is listed (welcome page and
OpenAPI document). The Starlette routes, the OpenAPI paths, the welcome page, the metrics
labels and authentication are all derived from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from .auth import Authenticator, protect
from .endpoints import ag_ui, invoke, runs, service
from .settings import RuntimeSettings

__all__ = ["ROUTE_TABLE", "Endpoint", "served", "starlette_routes"]

Handler = Callable[[Request], Awaitable[Any]]


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


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    protected: bool = False
    enabled: Callable[[RuntimeSettings], bool] = _always
    listed: bool = True  # on the welcome page and in the OpenAPI document


ROUTE_TABLE: tuple[Endpoint, ...] = (
    Endpoint("GET", "/", service.welcome, listed=False),
    Endpoint("GET", "/openapi.json", service.openapi, listed=False),
    Endpoint("GET", "/docs", service.docs, listed=False),
    Endpoint("GET", "/health", service.health),
    Endpoint("GET", "/ready", service.ready),
    Endpoint("GET", "/info", service.info),
    Endpoint("GET", "/schema", service.schema),
    Endpoint("GET", "/metrics", service.metrics),
    # Pattern A: one request, one run
    Endpoint("POST", "/invoke", invoke.invoke, protected=True, enabled=_rest),
    Endpoint("POST", "/invoke/stream", invoke.invoke_stream, protected=True, enabled=_sse),
    # Pattern B: background runs
    Endpoint("POST", "/runs", runs.create_run, protected=True, enabled=_runs),
    Endpoint("GET", "/runs/{run_id}", runs.get_run, protected=True, enabled=_runs),
    Endpoint("GET", "/runs/{run_id}/events", runs.run_events, protected=True, enabled=_runs),
    Endpoint("DELETE", "/runs/{run_id}", runs.cancel_run, protected=True, enabled=_runs),
    Endpoint("POST", "/runs/{run_id}/resume", runs.resume_run, protected=True, enabled=_runs),
    # AG-UI: agent front ends, on background runs
    Endpoint("POST", "/ag-ui", ag_ui.run_agent, protected=True, enabled=_ag_ui),
    Endpoint("GET", "/ag-ui/runs/{run_id}", ag_ui.replay_run, protected=True, enabled=_ag_ui),
)


def served(settings: RuntimeSettings) -> list[Endpoint]:
    """The rows of the table this Dockfile serves."""
    return [endpoint for endpoint in ROUTE_TABLE if endpoint.enabled(settings)]


def starlette_routes(endpoints: list[Endpoint], auth: Authenticator) -> list[BaseRoute]:
    """One Starlette `Route` per row (Starlette picks among routes of one path by method),
    protected rows behind `auth`, plus the offline Swagger UI assets."""
    routes: list[BaseRoute] = [
        Route(
            endpoint.path,
            protect(endpoint.handler, auth) if endpoint.protected else endpoint.handler,
            methods=[endpoint.method],
            name=f"{endpoint.method} {endpoint.path}",
        )
        for endpoint in endpoints
    ]
    routes.append(
        Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    )
    return routes

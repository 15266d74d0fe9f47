"""`create_app(spec_or_path)`: the Starlette application serving a Dockfile's agent.

The request path, in the order a request meets it: one ASGI layer (`http_layer`: request
ids, CORS, security headers, metrics, the access log, error handling) -> the route table
(`routes`) -> authentication for protected routes (`auth`) -> an endpoint (`endpoints/`)
-> the body checked
(`payload`) -> the agent run by the supervisor (`run_supervisor`, `agents/`) -> its
events in a run log (`dockrion_events`) -> Server-Sent Events back (`sse`). Errors become
responses in `errors`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette

from dockrion_schema import DockSpec, load_dockspec, resolve_environment

from .auth import Access, build_auth
from .endpoints.mcp_sessions import McpSessions
from .errors import EXCEPTION_HANDLERS
from .openapi.document import build_openapi
from .request.headers import cors_options, security_headers
from .request.layer import RuntimeApp
from .routes import Endpoint, needs_auth, served, starlette_routes
from .runtime import Runtime
from .secret_env import apply_secrets, check_secrets
from .settings import RuntimeSettings, SettingsError
from .telemetry import tracer_for

__all__ = ["create_app"]

log = logging.getLogger("dockrion.runtime")


class DockfileProbes(Enum):
    """`create_app`'s default probe address: the Dockfile's `expose.probe_port`."""

    DOCKFILE = "dockfile"


DOCKFILE_PROBES: Final = DockfileProbes.DOCKFILE


def create_app(
    spec_or_path: DockSpec | str | os.PathLike[str],
    *,
    env_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    probe_address: tuple[str, int] | DockfileProbes | None = DOCKFILE_PROBES,
    run_agents: bool | None = None,
) -> Starlette:
    """A Starlette app serving the Dockfile's agent. A path loads the Dockfile (env files
    beside it included) and resolves the agent module relative to its folder. Raises
    `AuthConfigError` when the auth section cannot work (for example a missing key). With
    required secrets missing the app serves, but is not ready and never loads the agent
    (`runtime.missing_secrets` names them; `serve` refuses to start instead).
    `probe_address` (host, port) replaces the Dockfile's `expose.probe_port`; None serves
    no probe listener. `run_agents` replaces `streaming.redis.queue.run_agents` (whether
    this process runs queued runs)."""
    if isinstance(spec_or_path, DockSpec):
        spec, base_dir = spec_or_path, Path.cwd()
    else:
        path = Path(spec_or_path)
        spec = load_dockspec(path, env_file=env_file, environ=environ)
        base_dir = path.parent
    settings = RuntimeSettings.from_spec(spec, base_dir)
    # Keys and secrets may sit in the env files beside the Dockfile too; the shell wins.
    env = resolve_environment(base_dir, env_file, environ)
    auth = build_auth(spec.auth, env)
    secrets = check_secrets(spec.secrets, env)
    # Agent code reads the process environment; an explicit `environ` stays the caller's.
    apply_secrets(secrets, os.environ if environ is None else dict(env))
    access = Access(spec.auth)
    if isinstance(probe_address, DockfileProbes):
        port = settings.probe_port
        probe_address = None if port is None else (settings.host, port)

    endpoints = served(settings)
    _check_paths(endpoints)
    listed = [endpoint for endpoint in endpoints if endpoint.listed]
    runtime = Runtime(
        settings,
        auth,
        access=access,
        missing_secrets=secrets.missing,
        # the welcome page: `WS /invoke/ws` beside `POST /invoke`
        listing=[("WS" if e.kind == "websocket" else e.method, e.path) for e in listed],
        openapi=_openapi(spec, settings, listed, access),
        probe_address=probe_address,
        run_agents=run_agents,
        tracer=tracer_for(settings, env),
    )
    routes = starlette_routes(endpoints, auth, access, runtime.rate_limiter)
    app = RuntimeApp(
        routes=routes,
        lifespan=runtime.lifespan,
        exception_handlers=dict(EXCEPTION_HANDLERS),
        layer_options={
            "metrics": runtime.metrics,
            "security_headers": security_headers(settings.security_headers),
            "cors": cors_options(settings.cors),
        },
    )
    app.state.runtime = runtime
    app.state.mcp_sessions = McpSessions()
    return app


def _check_paths(endpoints: list[Endpoint]) -> None:
    """A path the Dockfile chooses (`expose.mcp.path`) must not be another route's."""
    for chosen in endpoints:
        if chosen.path_from is None:
            continue
        taken = {e.path for e in endpoints if e.path_from is None}
        if chosen.path in taken or chosen.path.startswith(("/docs/assets", "/playground/")):
            raise SettingsError(f"expose.mcp.path {chosen.path!r} is the path of another route")


def _openapi(
    spec: DockSpec, settings: RuntimeSettings, listed: list[Endpoint], access: Access
) -> dict[str, Any]:
    operations = [e for e in listed if e.kind == "http"]
    document = build_openapi(
        spec, [(e.method, e.path, needs_auth(e, access)) for e in operations], settings.version
    )
    sockets = [e.path for e in listed if e.kind == "websocket"]
    if sockets:  # OpenAPI has no WebSocket operations: named in the description instead
        info = document["info"]
        info["description"] += (
            f"\n\nWebSocket endpoints (not OpenAPI operations): {', '.join(sockets)}. Each "
            "event is one text message holding the JSON that Server-Sent Events send as "
            "`data:`; see the runtime's WebSocket documentation."
        )
    return document

"""Service endpoints: `/`, `/health`, `/ready`, `/info`, `/schema`, `/metrics`, and the API
description (`/openapi.json`, `/docs`). None of them needs authentication."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .._version import __version__
from ..openapi.document import docs_page
from ..runtime import runtime_of
from ..try_it import try_it_command

__all__ = ["docs", "health", "info", "metrics", "openapi", "ready", "schema", "welcome"]


_WELCOME_STYLE = """
:root { --fg: #1d2330; --muted: #667085; --line: #d6dae1; --bg: #f7f8fa; --card: #fff;
  --accent: #2952cc; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
body { margin: 0 auto; max-width: 960px; padding: 16px 24px 48px; }
header h1 { margin: 0; font-size: 22px; }
header small, header p, .muted { color: var(--muted); font-weight: 400; }
header p { margin: 4px 0 16px; }
h2 { font-size: 15px; margin: 0 0 8px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
nav { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 16px; }
nav a { display: block; flex: 1 1 200px; padding: 12px; background: var(--card);
  border: 1px solid var(--line); border-radius: 8px; color: var(--fg); text-decoration: none; }
nav a:hover { border-color: var(--accent); }
nav a strong { display: block; color: var(--accent); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px; margin-bottom: 16px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; }
ul { margin: 0; padding-left: 18px; columns: 2; }
"""


async def welcome(request: Request) -> Response:
    """What this server is, where to try it (playground, API docs, OpenAPI document), a
    curl that works as pasted, and every route."""
    runtime = runtime_of(request)
    settings = runtime.settings
    name = html.escape(settings.name)
    links = [
        ("/docs", "API docs", "every endpoint, with a form to call it"),
        ("/openapi.json", "OpenAPI", "the API description, for clients and code generators"),
        ("/health", "Health", "liveness, and the runtime's and agent's versions"),
    ]
    if settings.playground:
        links.insert(0, ("/playground", "Playground", "try the agent in this browser"))
    cards = "".join(
        f'<a href="{href}"><strong>{title}</strong><span class="muted">{text}</span></a>'
        for href, title, text in links
    )
    keys = runtime.agent.input_keys if runtime.agent is not None else None
    command = try_it_command(str(request.base_url).rstrip("/"), settings.spec, keys)
    rows = "".join(
        f"<li><code>{method} {html.escape(path)}</code></li>" for method, path in runtime.listing
    )
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{name}</title><style>{_WELCOME_STYLE}</style></head><body>"
        f"<header><h1>{name} <small>{html.escape(settings.framework)} agent, "
        f"dockrion-runtime {html.escape(__version__)}</small></h1>"
        f"<p>{html.escape(settings.description)}</p></header>"
        f"<nav>{cards}</nav>"
        f"<section><h2>Try it</h2><pre>{html.escape(command)}</pre></section>"
        f"<section><h2>Routes</h2><ul>{rows}</ul></section>"
        "</body></html>"
    )


async def health(request: Request) -> Response:
    return JSONResponse(runtime_of(request).health())


async def ready(request: Request) -> Response:
    status, body = await runtime_of(request).readiness()
    return JSONResponse(body, status_code=status)


async def info(request: Request) -> Response:
    settings = runtime_of(request).settings
    agent = settings.spec.agent
    metadata = settings.spec.metadata
    return JSONResponse(
        {
            "success": True,
            "agent": {
                "name": agent.name,
                "description": settings.description,
                "framework": settings.framework,
                "mode": agent.mode,
                "target": agent.target,
                agent.mode: agent.target,
            },
            "auth_enabled": settings.auth_mode != "none",
            "version": settings.version,
            "metadata": metadata.model_dump(mode="json") if metadata else None,
            "runtime_version": __version__,
        }
    )


async def schema(request: Request) -> Response:
    settings = runtime_of(request).settings
    io = settings.spec.io_schema
    return JSONResponse(
        {
            "success": True,
            "agent": settings.name,
            "input_schema": io.input.model_dump(mode="json") if io.input else {},
            "output_schema": io.output.model_dump(mode="json") if io.output else {},
        }
    )


async def metrics(request: Request) -> Response:
    return runtime_of(request).metrics.exposition()


async def openapi(request: Request) -> Response:
    return JSONResponse(runtime_of(request).openapi)


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page(runtime_of(request).settings.name))

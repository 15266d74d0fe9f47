"""Service endpoints: `/`, `/health`, `/ready`, `/info`, `/schema`, `/metrics`, and the API
description (`/openapi.json`, `/docs`). None of them needs authentication."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .._version import __version__
from ..openapi.document import docs_page
from ..runtime import runtime_of

__all__ = ["docs", "health", "info", "metrics", "openapi", "ready", "schema", "welcome"]


async def welcome(request: Request) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    rows = "".join(
        f"<li><code>{method} {html.escape(path)}</code></li>" for method, path in runtime.listing
    )
    name = html.escape(settings.name)
    playground = (
        '<p><a href="/playground">Try the agent in the playground</a></p>'
        if settings.playground
        else ""
    )
    return HTMLResponse(
        f"<!doctype html><title>{name}</title><h1>{name}</h1>"
        f"<p>{html.escape(settings.description)}</p>{playground}<ul>{rows}</ul>"
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

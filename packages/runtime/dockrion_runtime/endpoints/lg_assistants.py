"""The LangGraph Server API's assistants and service routes: the agent is the one
assistant (its graph id is its name; its id the name or a UUID derived from it).
`POST /assistants/search`, `GET /assistants/{assistant_id}`, `GET
/assistants/{assistant_id}/schemas` (from `io_schema`), `GET
/assistants/{assistant_id}/graph` (a LangGraph graph's nodes and edges), `GET /info` and
`GET /ok`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from .lg_access import assistant, check_assistant, json_object

__all__ = ["assistant_graph", "assistant_schemas", "get_assistant", "info", "ok", "search"]


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def info(request: Request) -> Response:
    """What the server is and offers (clients check the connection with it)."""
    runtime = runtime_of(request)
    return JSONResponse(
        {
            "version": runtime.settings.version,
            "langgraph_py_version": None,
            "flags": {"assistants": True, "crons": False, "langsmith": False},
            "metadata": {"server": "dockrion", "agent": runtime.settings.spec.agent.name},
        }
    )


async def search(request: Request) -> Response:
    """`POST /assistants/search`: the one assistant, when it matches the filters."""
    body = await json_object(request, empty_ok=True)
    runtime = runtime_of(request)
    found = assistant(runtime)
    graph_id = body.get("graph_id")
    name = body.get("name")
    metadata = body.get("metadata") or {}
    offset = body.get("offset") or 0
    matches = (
        graph_id in (None, found["graph_id"])
        and (name is None or str(name) in found["name"])
        and isinstance(metadata, dict)
        and all(found["metadata"].get(key) == value for key, value in metadata.items())
        and offset == 0
    )
    return JSONResponse([found] if matches else [])


async def get_assistant(request: Request) -> Response:
    runtime = runtime_of(request)
    check_assistant(runtime, request.path_params["assistant_id"])
    return JSONResponse(assistant(runtime))


async def assistant_schemas(request: Request) -> Response:
    """`GET /assistants/{assistant_id}/schemas`: the agent's `io_schema`."""
    runtime = runtime_of(request)
    check_assistant(runtime, request.path_params["assistant_id"])
    io = runtime.settings.spec.io_schema

    def dumped(schema: Any) -> dict[str, Any] | None:
        return schema.model_dump(exclude_none=True) if schema is not None else None

    given = dumped(io.input) if io is not None else None
    return JSONResponse(
        {
            "graph_id": runtime.settings.spec.agent.name,
            "input_schema": given,
            "output_schema": dumped(io.output) if io is not None else None,
            "state_schema": given,
            "config_schema": None,
            "context_schema": None,
        }
    )


async def assistant_graph(request: Request) -> Response:
    """`GET /assistants/{assistant_id}/graph`: nodes and edges, where the agent has them."""
    runtime = runtime_of(request)
    check_assistant(runtime, request.path_params["assistant_id"])
    drawing = runtime.require_agent().graph_drawing()
    if drawing is None:
        raise RuntimeHTTPError(
            f"{runtime.settings.spec.agent.name} is not a graph: it has no nodes to draw",
            "NOT_FOUND",
        )
    return JSONResponse(drawing)

"""MCP over Streamable HTTP at `expose.mcp.path`: the agent as one tool for assistants
and agent frameworks.

`POST` takes one JSON-RPC message: `initialize` opens a session (`Mcp-Session-Id`),
`tools/list` names the one tool (its input schema is `io_schema.input`), `tools/call`
starts a background run and answers a Server-Sent Events stream of the call (progress
notifications from the run's tokens and progress events when the caller sent a
`progressToken`, then the tool result), `notifications/cancelled` cancels the call's run.
`GET` with `Last-Event-ID` resumes a call's stream after that event, from the run's log;
`DELETE` ends the session. Auth, permissions and rate limits are those of every run
route (a refusal is 401 with `WWW-Authenticate`); the run's events are redacted before
they are logged, so every message is too. The MCP models come from the optional `mcp`
extra, imported on the first request.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockrion_events import RunFinishedError

from ..auth import principal_of
from ..errors import RuntimeHTTPError
from ..request.body import io_json_schema
from ..request.headers import cors_options
from ..runtime import Runtime, runtime_of
from ..wire.sse import EventStreamResponse
from .mcp_sessions import McpSession, McpSessions
from .run_access import start_run

__all__ = ["PROTOCOL_VERSIONS", "mcp_delete", "mcp_get", "mcp_post", "tool_definition"]

# The revisions of the initialize handshake served, oldest to newest.
PROTOCOL_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
_SESSION_HEADER = "mcp-session-id"
_VERSION_HEADER = "mcp-protocol-version"
# JSON-RPC error codes
_INVALID_REQUEST = -32600
_METHOD_NOT_FOUND = -32601
_INVALID_PARAMS = -32602


def _wire() -> ModuleType:
    try:
        from ..wire import mcp
    except ImportError:
        raise RuntimeHTTPError(
            "expose.mcp is enabled but the MCP protocol package is not installed: "
            "pip install 'dockrion-runtime[mcp]'",
            "AGENT_NOT_READY",
        ) from None
    return mcp


def _sessions(request: Request) -> McpSessions:
    sessions: McpSessions = request.app.state.mcp_sessions
    return sessions


def _require_runs(runtime: Runtime) -> None:
    if not runtime.settings.async_runs:
        raise RuntimeHTTPError(
            "MCP runs each tool call as a background run: set streaming.async_runs: true",
            "AGENT_NOT_READY",
        )


def _rpc_error(
    request_id: Any, code: int, message: str, status: int = 200, data: Any = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status)


def _rpc_result(request_id: Any, result: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result}, headers=headers)


def _wrapped(runtime: Runtime) -> bool:
    """Whether the tool's arguments wrap the agent's input as `{"input": ...}`: MCP tool
    arguments are an object, and `io_schema.input` may say something else."""
    schema = runtime.settings.spec.io_schema.input
    return schema is not None and schema.type != "object"


def tool_definition(runtime: Runtime) -> dict[str, Any]:
    """The agent as an MCP tool: named after the agent, its input schema `io_schema.input`
    (an object; another type is the property `input` of one), its output schema
    `io_schema.output` when that is an object."""
    io_schema = runtime.settings.spec.io_schema
    if io_schema.input is None:
        input_schema: dict[str, Any] = {"type": "object", "additionalProperties": True}
    elif _wrapped(runtime):
        input_schema = {
            "type": "object",
            "properties": {"input": io_json_schema(io_schema.input)},
            "required": ["input"],
        }
    else:
        input_schema = io_json_schema(io_schema.input)
    tool: dict[str, Any] = {
        "name": runtime.settings.name,
        "description": runtime.settings.description,
        "inputSchema": input_schema,
    }
    if io_schema.output is not None and io_schema.output.type == "object":
        tool["outputSchema"] = io_json_schema(io_schema.output)
    return tool


def _foreign_origin(request: Request) -> Response | None:
    """403 for a browser page of an origin `expose.cors.origins` does not list (any when
    none are configured) and that is not the server's own: a page on another site, or one
    reaching a local server through a rebound DNS name, calls no tools."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    allowed = cors_options(runtime_of(request).settings.cors)["allow_origins"]
    if (
        "*" in allowed
        or origin in allowed
        or urlsplit(origin).netloc == request.headers.get("host")
    ):
        return None
    return _rpc_error(None, _INVALID_REQUEST, f"Origin {origin[:100]!r} may not call MCP here", 403)


async def mcp_post(request: Request) -> Response | EventStreamResponse:
    """`POST <path>`: one JSON-RPC message of the client."""
    runtime = runtime_of(request)
    refused = _foreign_origin(request)
    if refused is not None:
        return refused
    version = request.headers.get(_VERSION_HEADER)
    if version is not None and version not in PROTOCOL_VERSIONS:
        return _rpc_error(
            None,
            _INVALID_REQUEST,
            f"Unsupported MCP-Protocol-Version {version[:40]!r}; this server speaks "
            + ", ".join(PROTOCOL_VERSIONS),
            400,
            {"supported": list(PROTOCOL_VERSIONS), "requested": version[:40]},
        )
    body = await runtime.body.read(request, check=False)
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return _rpc_error(None, _INVALID_REQUEST, "Send one JSON-RPC 2.0 message", 400)
    method = body.get("method")
    request_id = body.get("id")
    is_request = isinstance(method, str) and "id" in body
    if method == "initialize" and is_request:
        return _initialize(request, request_id, body.get("params"))
    session = _session(request)
    if isinstance(session, Response):
        return session
    if not is_request:
        # a notification, or the client's answer to a request (this server sends none)
        if method == "notifications/cancelled":
            await _cancel(request, session, body.get("params"))
        return Response(status_code=202)
    if (
        not isinstance(method, str)
        or not isinstance(request_id, str | int)
        or isinstance(request_id, bool)
    ):
        return _rpc_error(None, _INVALID_REQUEST, "A request has a string method and an id", 400)
    if method == "ping":
        return _rpc_result(request_id, {})
    if method == "tools/list":
        return _rpc_result(request_id, {"tools": [tool_definition(runtime)]})
    if method == "tools/call":
        return await _call(request, session, request_id, body.get("params"))
    return _rpc_error(request_id, _METHOD_NOT_FOUND, f"Method not found: {method[:80]}")


def _initialize(request: Request, request_id: Any, params: Any) -> Response:
    runtime = runtime_of(request)
    asked = params.get("protocolVersion") if isinstance(params, dict) else None
    version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
    session = _sessions(request).open(principal_of(request).id, version)
    result = {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": runtime.settings.name, "version": runtime.settings.version},
        "instructions": runtime.settings.description,
    }
    return _rpc_result(request_id, result, **{"Mcp-Session-Id": session.session_id})


def _session(request: Request) -> McpSession | Response:
    """The request's session: 400 without `Mcp-Session-Id`, 404 for one that is not open
    (ended, forgotten, or another caller's)."""
    session_id = request.headers.get(_SESSION_HEADER)
    if session_id is None:
        return _rpc_error(
            None, _INVALID_REQUEST, "Mcp-Session-Id header required (send initialize first)", 400
        )
    session = _sessions(request).get(session_id, principal_of(request).id)
    if session is None:
        return _rpc_error(None, _INVALID_REQUEST, "Session not found; initialize again", 404)
    return session


async def _call(
    request: Request, session: McpSession, request_id: str | int, params: Any
) -> Response | EventStreamResponse:
    runtime = runtime_of(request)
    _require_runs(runtime)
    wire = _wire()
    agent = runtime.require_agent()
    runs = runtime.require_runs()
    name = params.get("name") if isinstance(params, dict) else None
    if name != runtime.settings.name:
        return _rpc_error(
            request_id,
            _INVALID_PARAMS,
            f"Unknown tool {str(name)[:80]!r}: this server has one tool, {runtime.settings.name!r}",
        )
    assert isinstance(params, dict)
    arguments = params.get("arguments") or {}
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if not isinstance(arguments, dict) or not (meta is None or isinstance(meta, dict)):
        return _rpc_error(request_id, _INVALID_PARAMS, "arguments and _meta must be objects")
    if not (token is None or isinstance(token, str | int)) or isinstance(token, bool):
        return _rpc_error(request_id, _INVALID_PARAMS, "_meta.progressToken: a string or integer")
    payload: Any = arguments.get("input") if _wrapped(runtime) else arguments
    problems = runtime.body.checker.problems(payload)
    if problems:
        said = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems[:20])
        result = wire.tool_result(None, "", error=f"VALIDATION_ERROR: {said}")
        dumped = wire.result_dict(result)
        dumped.pop("_meta", None)  # no run
        return _rpc_result(request_id, dumped)
    options = await runtime.threads.options(request, agent)
    metadata = {"mcp": {"request_id": request_id, "progress_token": token}}
    run = await start_run(request, payload, None, options, metadata)
    session.remember(request_id, run.run_id)
    call = wire.McpCall(run.run_id, request_id, token)
    release = await runtime.subscriber_place(request, run.run_id)
    batches = runs.bus.subscribe(run.run_id, 0, heartbeat=runtime.settings.heartbeat_interval)
    return runtime.event_stream(
        wire.call_frames(batches, call, None),
        run.run_id,
        on_close=release,
        heartbeat_events=False,  # MCP clients read every data line as a JSON-RPC message
    )


async def _cancel(request: Request, session: McpSession, params: Any) -> None:
    """`notifications/cancelled`: the run of the named call is cancelled (a notification
    has no answer: an unknown or finished call is ignored)."""
    run_id = session.run_of(params.get("requestId") if isinstance(params, dict) else None)
    if run_id is None:
        return
    reason = params.get("reason") if isinstance(params, dict) else None
    runs = runtime_of(request).require_runs()
    with contextlib.suppress(RunFinishedError):
        await runs.cancel_run(
            run_id, str(reason)[:200] if reason else "Cancelled by the MCP client"
        )


async def mcp_get(request: Request) -> Response | EventStreamResponse:
    """`GET <path>`: with `Last-Event-ID` (an id of a call's stream), the rest of that
    call's stream from the run's log; without it 405 (no stream of server requests)."""
    runtime = runtime_of(request)
    refused = _foreign_origin(request)
    if refused is not None:
        return refused
    last = request.headers.get("last-event-id")
    if last is None:
        return Response(status_code=405, headers={"Allow": "POST, DELETE"})
    session = _session(request)
    if isinstance(session, Response):
        return session
    _require_runs(runtime)
    wire = _wire()
    cursor = wire.McpCursor.parse(last)
    if cursor is None:
        return _rpc_error(
            None, _INVALID_REQUEST, "Last-Event-ID must be an id of a call's stream", 400
        )
    runs = runtime.require_runs()
    run = await runs.get_run(cursor.run_id)
    stored = run.metadata.get("mcp") if run is not None else None
    if run is None or run.owner != principal_of(request).id or not isinstance(stored, dict):
        return _rpc_error(None, _INVALID_REQUEST, "No call of this session has that event", 404)
    # Refuses (410) a run whose log no longer starts at its first event.
    await runs.bus.backend.read(run.run_id, -1, timeout=0)
    call = wire.McpCall(run.run_id, stored["request_id"], stored.get("progress_token"))
    release = await runtime.subscriber_place(request, run.run_id)
    batches = runs.bus.subscribe(run.run_id, 0, heartbeat=runtime.settings.heartbeat_interval)
    return runtime.event_stream(
        wire.call_frames(batches, call, cursor.sequence),
        run.run_id,
        on_close=release,
        timeout=float(runtime.settings.default_timeout),
        heartbeat_events=False,
    )


async def mcp_delete(request: Request) -> Response:
    """`DELETE <path>`: the client ends its session (its runs go on)."""
    session = _session(request)
    if isinstance(session, Response):
        return session
    _sessions(request).close(session.session_id)
    return Response(status_code=204)

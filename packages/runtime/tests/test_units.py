"""Fast, in-process tests of the runtime's pieces: route table, settings, body checking,
OpenAPI building, chunk mapping and error mapping. No server involved."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.routing import Match, Route

from dockrion_events import EventsExpiredError, InvalidRunIdError, RunExistsError
from dockrion_runtime.agents.chunks import chunk_call
from dockrion_runtime.auth.base import Authenticator
from dockrion_runtime.deadline import deadline
from dockrion_runtime.errors import (
    EXCEPTION_HANDLERS,
    STATUS_BY_CODE,
    RuntimeHTTPError,
    status_for,
)
from dockrion_runtime.logs import timestamp
from dockrion_runtime.openapi.document import build_openapi
from dockrion_runtime.request.body import BodyReader, SchemaChecker
from dockrion_runtime.routes import ROUTE_TABLE, served, starlette_routes
from dockrion_runtime.settings import RuntimeSettings, SettingsError
from dockrion_schema import DockSpec, IOSubSchema, StreamingEventsConfig

ROOT = Path(__file__).resolve().parents[3]


def spec(**sections: Any) -> DockSpec:
    document: dict[str, Any] = {
        "version": "1.0",
        "agent": {"name": "unit-agent", "handler": "agent:handle"},
        "io_schema": {
            "input": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            }
        },
        "expose": {"host": "127.0.0.1"},
    }
    document.update(sections)
    return DockSpec.model_validate(document)


def settings(**sections: Any) -> RuntimeSettings:
    return RuntimeSettings.from_spec(spec(**sections), Path("."))


# --- route table ---------------------------------------------------------------------------


def test_route_table_has_one_row_per_method_and_path() -> None:
    keys = [(endpoint.method, endpoint.path) for endpoint in ROUTE_TABLE]
    assert len(keys) == len(set(keys))


def test_every_invoke_and_runs_route_is_protected_and_service_routes_are_not() -> None:
    for endpoint in ROUTE_TABLE:
        family = endpoint.path.startswith(
            ("/invoke", "/runs", "/ag-ui", "/threads", "/mcp", "/a2a", "/lg/", "/usage")
        )
        # the LangGraph clients check the connection with /info and /ok before sending a key
        family = family and endpoint.path not in ("/lg/ok", "/lg/info")
        assert endpoint.protected == family, endpoint.path


def test_served_routes_follow_the_dockfile() -> None:
    everything = {(e.method, e.path) for e in served(settings())}
    assert ("POST", "/invoke") in everything
    assert ("DELETE", "/runs/{run_id}") in everything
    assert ("POST", "/ag-ui") not in everything  # AG-UI is opt-in
    assert ("POST", "/a2a") not in everything  # so is A2A
    a2a = settings(expose={"host": "127.0.0.1", "a2a": {"enabled": True}})
    assert {("POST", "/a2a"), ("GET", "/.well-known/agent-card.json")} <= {
        (e.method, e.path) for e in served(a2a)
    }
    ag_ui = settings(expose={"host": "127.0.0.1", "ag_ui": {"enabled": True}})
    assert {("POST", "/ag-ui"), ("GET", "/ag-ui/runs/{run_id}")} <= {
        (e.method, e.path) for e in served(ag_ui)
    }
    langgraph = settings(expose={"host": "127.0.0.1", "langgraph_api": {"enabled": True}})
    assert ("POST", "/lg/threads/{thread_id}/runs/stream") in {
        (e.method, e.path) for e in served(langgraph)
    }
    moved = settings(
        expose={"host": "127.0.0.1", "langgraph_api": {"enabled": True, "prefix": "/api/lg"}}
    )
    assert {e.path for e in served(moved) if "assistants/search" in e.path} == {
        "/api/lg/assistants/search"
    }
    quiet = settings(expose={"rest": True, "streaming": "none"}, streaming={"async_runs": False})
    paths = {e.path for e in served(quiet)}
    assert "/invoke" in paths
    assert not any(path.startswith(("/invoke/stream", "/runs")) for path in paths)
    assert {"/health", "/ready", "/metrics"} <= paths


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_starlette_picks_among_routes_of_one_path_by_method() -> None:
    routes = [
        r for r in starlette_routes(served(settings()), Authenticator()) if isinstance(r, Route)
    ]
    matches = {
        route.name: route.matches(_scope("DELETE", "/runs/abc"))[0]
        for route in routes
        if route.path == "/runs/{run_id}"
    }
    assert matches == {"GET /runs/{run_id}": Match.PARTIAL, "DELETE /runs/{run_id}": Match.FULL}


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults_come_from_the_schema_models() -> None:
    plain = settings()
    schema_defaults = StreamingEventsConfig()
    assert plain.heartbeat_interval == schema_defaults.heartbeat_interval
    assert plain.max_run_duration == schema_defaults.max_run_duration
    assert plain.invoke_timeout == 30
    assert plain.max_body_bytes == 1024 * 1024
    assert plain.api_keys.header == "X-API-Key"
    assert plain.framework == "custom"
    assert plain.version == "1.0.0"


def test_settings_take_the_dockfile_values() -> None:
    custom = settings(
        arguments={"timeout_sec": 0, "max_body_bytes": 10, "model": "mine"},
        streaming={"events": {"heartbeat_interval": 2}, "connection": {"default_timeout": 9}},
    )
    assert custom.invoke_timeout is None  # 0 disables the bound
    assert custom.max_body_bytes == 10
    assert custom.arguments.model_extra == {"model": "mine"}  # the agent's own keys pass
    assert custom.heartbeat_interval == 2
    assert custom.default_timeout == 9


def test_a_runtime_argument_of_the_wrong_type_is_refused_with_its_name() -> None:
    with pytest.raises(SettingsError, match=r"arguments\.max_body_bytes"):
        settings(arguments={"max_body_bytes": "lots"})


# --- body checking -------------------------------------------------------------------------

QUERY = IOSubSchema.model_validate(
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "mode": {"enum": ["fast", "slow"]},
            "options": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
)


def test_valid_payload_has_no_problems() -> None:
    assert SchemaChecker(QUERY).problems({"query": "q", "mode": "fast"}) == []


def test_problems_keep_the_documented_loc_and_messages() -> None:
    problems = SchemaChecker(QUERY).problems({"mode": "other", "extra": 1, "options": {"n": "x"}})
    assert {"loc": ["body", "query"], "msg": "field required"} in problems
    assert {"loc": ["body", "mode"], "msg": 'must be one of "fast", "slow"'} in problems
    assert {"loc": ["body", "extra"], "msg": "unexpected field"} in problems
    assert {"loc": ["body", "options", "n"], "msg": "must be of type integer"} in problems


def test_a_value_of_the_wrong_kind_is_one_problem_at_the_body() -> None:
    assert SchemaChecker(QUERY).problems([1, 2]) == [
        {"loc": ["body"], "msg": "must be of type object"}
    ]


def test_without_a_schema_any_object_passes_and_nothing_else() -> None:
    checker = SchemaChecker(None)
    assert checker.problems({"anything": [1]}) == []
    assert checker.problems("text") == [{"loc": ["body"], "msg": "must be a JSON object"}]


def _request(body: bytes, headers: dict[str, str] | None = None) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "headers": raw}, receive)


def _read_error(reader: BodyReader, body: bytes) -> RuntimeHTTPError:
    with pytest.raises(RuntimeHTTPError) as caught:
        asyncio.run(reader.read(_request(body)))
    return caught.value


def test_body_reader_refusals_carry_status_and_code() -> None:
    reader = BodyReader(QUERY, max_bytes=64)
    assert asyncio.run(reader.read(_request(b'{"query": "hi"}'))) == {"query": "hi"}
    too_large = _read_error(reader, b'{"query": "' + b"x" * 100 + b'"}')
    assert (too_large.status, too_large.code) == (413, "PAYLOAD_TOO_LARGE")
    malformed = _read_error(reader, b"{not json")
    assert (malformed.status, malformed.code) == (400, "VALIDATION_ERROR")
    empty = _read_error(reader, b"  ")
    assert empty.details == [{"loc": ["body"], "msg": "body is empty"}]


# --- OpenAPI -------------------------------------------------------------------------------


def test_openapi_marks_only_protected_operations_as_secured() -> None:
    document = build_openapi(
        spec(auth={"mode": "api_key"}),
        [("GET", "/health", False), ("POST", "/invoke", True)],
        "1.0.0",
    )
    assert "security" not in document["paths"]["/health"]["get"]
    invoke = document["paths"]["/invoke"]["post"]
    assert invoke["security"] == [{"APIKeyHeader": []}, {"BearerAuth": []}]
    assert "401" in invoke["responses"]
    assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_openapi_input_schema_is_the_io_schema() -> None:
    document = build_openapi(spec(), [("POST", "/invoke", True)], "2.0.0")
    assert document["info"]["version"] == "2.0.0"
    assert document["components"]["schemas"]["Unit_agentInput"]["required"] == ["query"]


# --- chunks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("Hel", ("token", {"content": "Hel"})),
        (42, ("token", {"content": "42"})),
        ({"type": "token", "content": "lo"}, ("token", {"content": "lo"})),
        ({"type": "step", "node": "plan"}, ("step", {"node_name": "plan"})),
        (
            {"type": "progress", "step": "s", "progress": 0.5, "other": 1},
            ("progress", {"step": "s", "progress": 0.5}),
        ),
        (
            {"type": "custom", "event_type": "cite", "data": {"u": 1}},
            ("custom", {"event_type": "cite", "data": {"u": 1}}),
        ),
        ({"type": "unknown"}, None),
    ],
)
def test_chunks_map_to_events(chunk: Any, expected: Any) -> None:
    assert chunk_call(chunk, []) == expected


def test_result_chunk_is_collected_not_emitted() -> None:
    result: list[Any] = []
    assert chunk_call({"type": "result", "data": {"answer": 1}}, result) is None
    assert result == [{"answer": 1}]


# --- errors --------------------------------------------------------------------------------


def test_every_code_of_the_contract_has_its_status() -> None:
    assert status_for("VALIDATION_ERROR") == 400
    assert status_for("FORBIDDEN") == 403
    assert status_for("TOO_MANY_SUBSCRIBERS") == 429
    assert status_for("RUN_TIMEOUT") == 504
    assert status_for("SOMETHING_NEW") == 500
    assert all(400 <= status < 600 for status in STATUS_BY_CODE.values())


def _handle(exc: Exception) -> tuple[int, dict[str, Any]]:
    handler = next(h for kind, h in EXCEPTION_HANDLERS.items() if isinstance(exc, kind))
    request = Request({"type": "http", "method": "GET", "path": "/x", "headers": []})
    response = asyncio.run(handler(request, exc))
    return response.status_code, json.loads(bytes(response.body))


def test_events_errors_become_responses_by_their_code() -> None:
    assert _handle(RunExistsError("r1")) == (
        409,
        {
            "success": False,
            "error": "Run id 'r1' is already in use; choose another (a UUID, for example)",
            "code": "CONFLICT",
            "details": None,
        },
    )
    assert _handle(InvalidRunIdError("bad id"))[0] == 400
    status, body = _handle(EventsExpiredError("r1", 0, 5))
    assert (status, body["code"], body["first_available"]) == (410, "EVENTS_EXPIRED", 5)


def test_unexpected_errors_never_show_their_message() -> None:
    status, body = _handle(ValueError("secret detail"))
    assert status == 500 and body["code"] == "INTERNAL_ERROR"
    assert "secret detail" not in json.dumps(body)


def test_log_timestamps_are_those_of_datetime() -> None:
    edges = [0.0, 1.5, 1_700_000_000.0, 1_700_000_000.9999996, 1_700_000_000.0000004]
    steps = [1_700_000_000 + i * 0.37 + i / 7 for i in range(2_000)]
    for created in edges + steps:
        assert timestamp(created) == datetime.fromtimestamp(created, UTC).isoformat()


def test_a_deadline_ends_its_block_like_asyncio_timeout() -> None:
    async def scenario() -> None:
        async with deadline(None):
            await asyncio.sleep(0)
        async with deadline(30):
            await asyncio.sleep(0)  # done in time: nothing happens
        with pytest.raises(TimeoutError):
            async with deadline(0.01):
                await asyncio.sleep(30)
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        # cancelled from outside while the deadline is armed: a CancelledError, not ours
        inner = asyncio.ensure_future(_sleep_within(deadline(30)))
        await asyncio.sleep(0.01)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await inner

    asyncio.run(scenario())


async def _sleep_within(limit: Any) -> None:
    async with limit:
        await asyncio.sleep(30)


def test_a_callers_auth_context_is_built_once_and_read_only() -> None:
    from types import MappingProxyType

    from dockrion_runtime.auth.base import Principal
    from dockrion_runtime.engine.encoding import to_jsonable

    principal = Principal(id="jwt:alice", method="jwt", claims={"sub": "alice"})
    auth = principal.auth_context
    assert auth is principal.auth_context  # the same value for each of the caller's runs
    assert auth.principal_id == "jwt:alice" and auth.claims == {"sub": "alice"}
    with pytest.raises(TypeError):
        auth.claims["sub"] = "mallory"  # type: ignore[index]
    # An agent may return what it read: a read-only mapping encodes as an object.
    assert to_jsonable({"claims": auth.claims}) == {"claims": {"sub": "alice"}}
    assert isinstance(auth.claims, MappingProxyType)


@pytest.mark.parametrize(
    "example", ["quickstart", "langgraph-chat", "langgraph-react", "langchain-chain"]
)
def test_the_try_it_body_is_accepted_by_the_example_s_input_schema(example: str) -> None:
    from dockrion_runtime.try_it import example_payload
    from dockrion_schema import load_dockspec

    root = Path(__file__).resolve().parents[3]
    spec = load_dockspec(root / "examples" / example / "Dockfile.yaml")
    body = example_payload(spec.io_schema.input)
    assert SchemaChecker(spec.io_schema.input).problems(body) == []


def test_the_try_it_body_follows_the_schema() -> None:
    from dockrion_runtime.try_it import example_payload, try_it_command

    chat = IOSubSchema.model_validate(
        {
            "type": "object",
            "properties": {
                "messages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                        "required": ["role", "content"],
                    },
                },
                "temperature": {"type": "number", "minimum": 0.5},
            },
            "required": ["messages", "temperature"],
        }
    )
    assert example_payload(chat) == {
        "messages": [{"role": "user", "content": "hello from dockrion"}],
        "temperature": 0.5,
    }
    quoted = spec(
        io_schema={
            "input": {
                "type": "object",
                "properties": {"who": {"type": "string", "default": "it's me"}},
            }
        }
    )
    command = try_it_command("http://127.0.0.1:8080", quoted)
    assert command.endswith("""-d '{"who": "it'\\''s me"}'""")  # safe inside '...' in a shell
    assert example_payload(None) == {"query": "hello from dockrion"}


def test_the_try_it_line_fits_chat_agents_agents_without_properties_and_auth() -> None:
    from dockrion_runtime.try_it import example_payload, try_it_command

    user = {"role": "user", "content": "hello from dockrion"}
    # a LangGraph agent's `messages`, however little its schema says about them
    bare = IOSubSchema.model_validate(
        {"type": "object", "properties": {"messages": {"type": "array", "items": {}}}}
    )
    assert example_payload(bare) == {"messages": [user]}
    # no properties: what the loaded agent takes (a graph's state), else the quickstart's
    anything = IOSubSchema.model_validate({"type": "object"})
    assert example_payload(anything, frozenset({"messages", "remaining_steps"})) == {
        "messages": [user]
    }
    assert example_payload(anything, frozenset({"question", "answer"})) == {
        "answer": "hello from dockrion"
    }
    assert example_payload(anything) == {"query": "hello from dockrion"}

    keyed = spec(auth={"mode": "api_key", "api_keys": {"header": "X-Team-Key"}})
    command = try_it_command("http://0.0.0.0:9000", keyed)
    # the key stays in the environment: the shell reads the variable the server read
    assert ' -H "X-Team-Key: $DOCKRION_API_KEY" ' in command
    assert command.startswith("curl -N -X POST http://127.0.0.1:9000/invoke/stream ")
    team = spec(auth={"mode": "api_key", "api_keys": {"prefix": "team"}})
    environ = {"TEAM_API_KEY_BOB": "b", "TEAM_API_KEY_ALICE": "a", "OTHER": "x"}
    assert '"X-API-Key: $TEAM_API_KEY_ALICE"' in try_it_command("http://h:1", team, None, environ)
    rest_only = spec(expose={"streaming": "none"})
    assert try_it_command("http://h:1", rest_only).startswith("curl -X POST http://h:1/invoke ")

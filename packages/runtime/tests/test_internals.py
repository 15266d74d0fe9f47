"""The third-party internals the runtime relies on, each checked in the shape it is used in.

None of these is public API: a release may move or change one without notice. Each
package whose internals are used has an upper bound in pyproject.toml naming them; before
raising a bound, these tests must pass on the new release. They run on the lowest declared
versions too (`python3 tools/release_smoke.py --floors`), so they need no fixture and no
conftest. A failure names the internal and what of ours uses it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState
from websockets.protocol import State

Messages = list[dict[str, Any]]


def broken(internal: str, user: str) -> str:
    return f"{internal} changed: {user} relies on it (see packages/runtime/pyproject.toml)"


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _exchange(protocol_class: type[Any], data: bytes, **config: Any) -> bytes:
    """`data` sent to one connection served by `protocol_class`, built the way uvicorn
    builds it; the bytes answered (until the server closes or a second passes quietly)."""
    settings = uvicorn.Config(_hello, log_level="critical", lifespan="off", **config)
    settings.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: protocol_class(config=settings, server_state=state, app_state={}),
        "127.0.0.1",
        0,
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        answer = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 1.0)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
        writer.close()
        return answer
    finally:
        server.close()


# --- starlette -------------------------------------------------------------------------------


def test_starlette_finds_an_exception_handler_by_the_exceptions_classes() -> None:
    internal = "starlette._exception_handler._lookup_exception_handler(handlers, exc)"
    user = "http_layer.RequestLayer._failed"
    module = importlib.import_module("starlette._exception_handler")
    lookup = getattr(module, "_lookup_exception_handler", None)
    assert callable(lookup), broken(internal, user)

    def on_key(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("key")

    def on_lookup(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("lookup")

    handlers: dict[Any, Any] = {KeyError: on_key, LookupError: on_lookup}
    assert lookup(handlers, KeyError("x")) is on_key, broken(internal, user)
    assert lookup(handlers, IndexError("x")) is on_lookup, broken(internal, user)  # base class
    assert lookup(handlers, ValueError("x")) is None, broken(internal, user)


def test_starlette_routes_apply_the_exception_handlers_left_in_the_scope() -> None:
    internal = "the scope key 'starlette.exception_handlers' = (handlers, status handlers)"
    user = "http_layer.RequestLayer (it sets the key instead of Starlette's middleware)"

    class Refused(Exception):
        pass

    async def endpoint(request: Request) -> Response:
        raise Refused

    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled", status_code=418)

    route = Route("/", endpoint)
    sent: Messages = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "starlette.exception_handlers": ({Refused: handler}, {}),
    }
    asyncio.run(route.handle(scope, receive, send))
    assert sent and sent[0]["status"] == 418, broken(internal, user)


def test_starlette_routes_expose_what_the_fast_path_reads() -> None:
    internal = "starlette.routing.Route: endpoint, path, methods, param_convertors, matches()"
    user = "http_layer (the fixed-path fast path calls route.endpoint itself)"

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok")

    fixed = Route("/health", endpoint, methods=["GET"])
    templated = Route("/runs/{run_id}", endpoint, methods=["DELETE"])
    assert fixed.endpoint is endpoint and fixed.path == "/health", broken(internal, user)
    assert fixed.methods is not None and "GET" in fixed.methods, broken(internal, user)
    assert fixed.param_convertors == {}, broken(internal, user)
    assert set(templated.param_convertors) == {"run_id"}, broken(internal, user)
    scope = {"type": "http", "path": "/runs/r1", "method": "DELETE", "root_path": ""}
    match, child = templated.matches(scope)
    assert match == Match.FULL and child["path_params"] == {"run_id": "r1"}, broken(internal, user)


def test_starlette_builds_its_middleware_stack_through_an_overridable_method() -> None:
    internal = "Starlette.build_middleware_stack() and Starlette.exception_handlers"
    user = "http_layer.RuntimeApp (one request layer in place of the middleware stack)"
    built: list[dict[Any, Any]] = []

    class App(Starlette):
        def build_middleware_stack(self) -> Any:
            built.append(dict(self.exception_handlers))
            return super().build_middleware_stack()

    async def on_key(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("key")

    app = App(exception_handlers={KeyError: on_key})
    sent: Messages = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(app(scope, receive, send))
    assert built and built[0].get(KeyError) is on_key, broken(internal, user)


def test_starlettes_cors_rules_are_readable_without_its_middleware() -> None:
    internal = (
        "CORSMiddleware.simple_headers, allow_all_origins, allow_credentials, "
        "is_allowed_origin(origin=), preflight_response(request_headers=)"
    )
    user = "http_layer.RequestLayer (CORS applied in place of the middleware)"
    from starlette.datastructures import Headers

    cors = CORSMiddleware(
        _hello, allow_origins=["https://a.example"], allow_methods=["GET"], allow_credentials=True
    )
    assert isinstance(cors.simple_headers, dict), broken(internal, user)
    assert (cors.allow_all_origins, cors.allow_credentials) == (False, True), broken(internal, user)
    assert cors.is_allowed_origin(origin="https://a.example"), broken(internal, user)
    assert not cors.is_allowed_origin(origin="https://b.example"), broken(internal, user)
    preflight = cors.preflight_response(
        request_headers=Headers(
            {"origin": "https://a.example", "access-control-request-method": "GET"}
        )
    )
    assert preflight.status_code == 200, broken(internal, user)


# --- uvicorn ---------------------------------------------------------------------------------


def _http_protocols() -> list[type[Any]]:
    protocols: list[type[Any]] = [H11Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools has no wheel for this platform
        return protocols
    return [*protocols, HttpToolsProtocol]


@pytest.mark.parametrize("base", _http_protocols(), ids=lambda cls: cls.__name__)
def test_uvicorns_http_protocols_have_the_state_the_guarded_protocols_read(
    base: type[Any],
) -> None:
    internal = (
        f"uvicorn {base.__name__}: connection_made/data_received/connection_lost, "
        "transport, loop, app, connections, cycle (None, then .response_complete)"
    )
    user = "server._HeadDeadline (request-head deadline, connection cap)"
    seen: dict[str, Any] = {}

    class Watched(base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            seen["made"] = (self.transport, self.loop, self.app, self.cycle)
            seen["connected"] = self in self.connections

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            seen["cycle"] = self.cycle

        def connection_lost(self, exc: Exception | None) -> None:
            seen["complete"] = seen["cycle"].response_complete
            super().connection_lost(exc)

    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = asyncio.run(_exchange(Watched, request))
    assert answer.startswith(b"HTTP/1.1 200"), broken(internal, user)
    transport, loop, app, cycle = seen["made"]
    assert isinstance(transport, asyncio.Transport), broken(internal, user)
    assert isinstance(loop, asyncio.AbstractEventLoop) and app is not None, broken(internal, user)
    assert cycle is None and seen["connected"], broken(internal, user)
    assert seen["cycle"] is not None and seen["complete"] is True, broken(internal, user)


@pytest.mark.parametrize("base", _http_protocols(), ids=lambda cls: cls.__name__)
def test_uvicorns_http_protocols_call_the_hooks_the_guarded_protocols_override(
    base: type[Any],
) -> None:
    internal = f"uvicorn {base.__name__}.send_400_response(msg), handle_websocket_upgrade(...)"
    user = "http_protocols.GuardedH11Protocol / GuardedHttpToolsProtocol"
    calls: list[str] = []

    class Watched(base):  # type: ignore[misc,valid-type]
        def send_400_response(self, msg: str) -> None:
            calls.append(f"400 {type(msg).__name__}")
            if base is H11Protocol:  # the size check reads h11's unparsed bytes
                trailing = self.conn.trailing_data
                assert isinstance(trailing, tuple) and isinstance(trailing[0], bytes)
            super().send_400_response(msg)

        def handle_websocket_upgrade(self, *args: Any) -> None:
            calls.append("upgrade")
            super().handle_websocket_upgrade(*args)

    answer = asyncio.run(_exchange(Watched, b"NOT HTTP AT ALL\r\n\r\n"))
    assert calls == ["400 str"] and answer.startswith(b"HTTP/1.1 400"), broken(internal, user)
    calls.clear()
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = asyncio.run(_exchange(Watched, upgrade, ws="websockets-sansio"))
    assert calls == ["upgrade"] and answer.startswith(b"HTTP/1.1 101"), broken(internal, user)


def test_uvicorns_sansio_websocket_protocol_has_what_the_coalescing_protocol_uses() -> None:
    internal = (
        "uvicorn WebSocketsSansIOProtocol: handle_connect(event), scope['extensions'], "
        "send(), writable, disconnected, handshake_complete, close_sent, transport, "
        "conn (websockets ServerProtocol: state, extensions, send_text, data_to_send)"
    )
    user = "websocket_protocol.CoalescingWebSocketProtocol"
    module = importlib.import_module("uvicorn.protocols.websockets.websockets_sansio_impl")
    base = getattr(module, "WebSocketsSansIOProtocol", None)
    assert base is not None, broken(internal, user)
    seen: dict[str, Any] = {}

    class Watched(base):  # type: ignore[misc,valid-type]
        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            seen["extensions"] = self.scope["extensions"]

        async def send(self, message: Any) -> None:
            if message["type"] == "websocket.send":
                await self.writable.wait()
                seen["open"] = (self.disconnected, self.conn.state, self.handshake_complete)
                seen["close_sent"] = self.close_sent
                seen["deflate"] = list(self.conn.extensions)
                self.conn.send_text(message["text"].encode())
                self.transport.write(b"".join(self.conn.data_to_send()))
                return
            await super().send(message)

    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = asyncio.run(_exchange(Watched, upgrade))
    assert answer.startswith(b"HTTP/1.1 101"), broken(internal, user)
    assert isinstance(seen.get("extensions"), dict), broken(internal, user)
    assert seen["open"] == (False, State.OPEN, True) and seen["close_sent"] is False, broken(
        internal, user
    )
    assert seen["deflate"] == [], broken(internal, user)  # no extension was offered
    assert b"\x81\x05hello" in answer, broken(internal, user)  # the frame written by hand


def test_uvicorns_websocket_send_raises_client_disconnected_once_the_client_left() -> None:
    internal = "uvicorn.protocols.utils.ClientDisconnected, raised by send() once disconnected"
    user = "websocket_protocol.CoalescingWebSocketProtocol.send (raises it like uvicorn)"
    module = importlib.import_module("uvicorn.protocols.websockets.websockets_sansio_impl")
    assert issubclass(ClientDisconnected, OSError), broken(internal, user)
    raised: list[BaseException] = []

    class Watched(module.WebSocketsSansIOProtocol):  # type: ignore[misc,name-defined]
        async def send(self, message: Any) -> None:
            if message["type"] == "websocket.send":
                self.disconnected = True
                try:
                    await super().send(message)
                except BaseException as exc:
                    raised.append(exc)
                    raise
                return
            await super().send(message)

    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    asyncio.run(_exchange(Watched, upgrade))
    assert raised and isinstance(raised[0], ClientDisconnected), broken(internal, user)


def test_uvicorn_calls_shutdown_with_its_listening_servers() -> None:
    internal = "uvicorn.Server.shutdown(sockets) and Server.servers (asyncio servers)"
    user = "cli.GracefulServer (stops accepting, then drains the runs)"
    assert "sockets" in inspect.signature(uvicorn.Server.shutdown).parameters, broken(
        internal, user
    )
    closed: list[Any] = []

    class Graceful(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
                closed.append(server)
            await super().shutdown(sockets)

    sock = socket.create_server(("127.0.0.1", 0))
    server = Graceful(uvicorn.Config(_hello, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started or not thread.is_alive())
        assert server.started, broken(internal, user)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert closed and all(callable(getattr(s, "close", None)) for s in closed), broken(
        internal, user
    )


def test_uvicorns_worker_supervisor_makes_its_workers_from_its_process_class() -> None:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import ChangeReload, Multiprocess, multiprocess

    internal = (
        "uvicorn.supervisors.multiprocess: the module name Process(config, sockets) that "
        "Multiprocess builds each worker from, its `server`, Multiprocess.processes, "
        "ChangeReload(config, target, sockets) and config.STARTUP_FAILURE"
    )
    user = "serve/launch.py (every worker and the reloader's child run GracefulServer)"
    source = inspect.getsource(Multiprocess)
    assert "Process(" in source and "self.processes" in source, broken(internal, user)
    parameters = list(inspect.signature(multiprocess.Process.__init__).parameters)
    assert parameters[1:3] == ["config", "sockets"], broken(internal, user)
    assert "server" in vars(multiprocess.Process) or hasattr(multiprocess.Process, "server"), (
        broken(internal, user)
    )
    reload_parameters = list(inspect.signature(ChangeReload.__init__).parameters)
    assert reload_parameters[1:4] == ["config", "target", "sockets"], broken(internal, user)
    assert isinstance(STARTUP_FAILURE, int), broken(internal, user)


def _wait(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


# --- the standard library ------------------------------------------------------------------


def test_the_regex_parser_gives_the_longest_match_of_a_pattern() -> None:
    internal = "re._parser.parse(pattern, flags).getwidth() and re._parser.MAXREPEAT"
    user = "policies (the longest match a redaction pattern can make)"
    parser = importlib.import_module("re._parser")
    assert parser.parse("abc", 0).getwidth() == (3, 3), broken(internal, user)
    assert parser.parse("a{2,5}", 0).getwidth() == (2, 5), broken(internal, user)
    assert parser.parse("sk-[a-z0-9]+", 0).getwidth()[1] >= parser.MAXREPEAT, broken(internal, user)


# --- langgraph (the langgraph extra) -------------------------------------------------------


def test_a_compiled_langgraph_graph_names_its_input_channels() -> None:
    pytest.importorskip("langgraph")
    from typing import TypedDict

    from langgraph.graph import StateGraph

    internal = "CompiledStateGraph.builder.schemas[builder.input_schema] (channels by name)"
    user = "agents.langgraph_agent.LangGraphAgent.input_keys (AG-UI state keys)"

    class State(TypedDict):
        question: str
        answer: str

    builder = StateGraph(State)
    builder.add_node("answer", lambda state: {"answer": state["question"]})
    builder.set_entry_point("answer")
    builder.set_finish_point("answer")
    graph = builder.compile()
    compiled_builder = getattr(graph, "builder", None)
    schemas = getattr(compiled_builder, "schemas", None)
    assert isinstance(schemas, dict), broken(internal, user)
    channels = schemas.get(getattr(compiled_builder, "input_schema", None))
    assert isinstance(channels, dict) and set(channels) == {"question", "answer"}, broken(
        internal, user
    )


# --- OpenTelemetry SDK (the otel extra) and langchain-core's configure hook ----------------


def test_the_sdks_tracer_provider_takes_an_id_generator_it_asks_for_each_span() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    internal = "TracerProvider(id_generator=...) subclassing RandomIdGenerator"
    user = "telemetry.tracing.preset_ids (a run's span ids chosen at acceptance)"

    class Fixed(RandomIdGenerator):
        def generate_span_id(self) -> int:
            return 0xABC

        def generate_trace_id(self) -> int:
            return 0xDEF

    span = TracerProvider(id_generator=Fixed()).get_tracer("t").start_span("s")
    context = span.get_span_context()
    assert (context.trace_id, context.span_id) == (0xDEF, 0xABC), broken(internal, user)
    span.end()


def test_langchain_core_adds_a_context_variables_handler_to_every_callback_manager() -> None:
    pytest.importorskip("langchain_core")
    import contextvars

    from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
    from langchain_core.tracers.context import register_configure_hook

    internal = "langchain_core.tracers.context.register_configure_hook"
    user = "telemetry.callbacks (a run's handler in every callback manager it makes)"
    variable: contextvars.ContextVar[Any] = contextvars.ContextVar("internals", default=None)
    register_configure_hook(variable, inheritable=True)
    handler = BaseCallbackHandler()
    token = variable.set(handler)
    try:
        manager = CallbackManager.configure()
    finally:
        variable.reset(token)
    assert handler in manager.handlers, broken(internal, user)
    assert handler not in CallbackManager.configure().handlers, broken(internal, user)

"""Dockfile v1: every section as a pydantic model, with its defaults, ranges and rules.

Rule violations raise `ValueError`, so pydantic collects every problem of a document in one
pass; `dockrion_schema.loader` turns them into located, readable issues. Unknown keys are
kept at every level (`extra="allow"`) for forward compatibility and reported as warnings by
the loader.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ._auth import (
    ApiKeysConfig,
    AuthConfig,
    JWTClaimsConfig,
    JWTConfig,
    OAuth2Config,
    RoleConfig,
)
from ._fields import (
    AGENT_NAME_RE,
    JSON_TYPES,
    SECRET_NAME_RE,
    SUPPORTED_VERSIONS,
    Between,
    NonBlankList,
    _positive,
    _Section,
    _target,
)
from ._redaction import stream_shape
from ._streaming import (
    MemoryStreamingConfig,
    RedisSentinelConfig,
    RedisStreamingConfig,
    StreamingConfig,
    StreamingConnectionConfig,
    StreamingEventsConfig,
    StreamingIdGenerator,
)
from ._threads import ThreadsConfig

# --- agent -----------------------------------------------------------------------------


def _agent_name(value: str) -> str:
    if not AGENT_NAME_RE.match(value):
        raise ValueError(
            "must start with a lowercase letter and use only lowercase letters, digits and "
            f"hyphens, at most 63 characters, not ending with a hyphen; got {value!r}"
        )
    return value


class AgentConfig(_Section):
    name: Annotated[
        str,
        AfterValidator(_agent_name),
        Field(json_schema_extra={"pattern": AGENT_NAME_RE.pattern}),
    ]
    entrypoint: Annotated[str | None, AfterValidator(_target("factory or agent object"))] = None
    handler: Annotated[str | None, AfterValidator(_target("handler"))] = None
    framework: Literal["langgraph", "langchain", "custom"] | None = None
    description: str | None = None

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {"required": ["handler"], "properties": {"handler": {"type": "string"}}},
                {
                    "required": ["entrypoint", "framework"],
                    "properties": {
                        "entrypoint": {"type": "string"},
                        "framework": {"type": "string"},
                    },
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _mode(self) -> AgentConfig:
        if self.handler is None and self.entrypoint is None:
            raise ValueError(
                "needs 'handler' (a callable called per request) or 'entrypoint' "
                "(a factory called once) in the form 'module:callable'"
            )
        if self.handler is None and self.framework is None:
            raise ValueError(
                "entrypoint mode needs 'framework' (one of: langgraph, langchain, custom)"
            )
        if self.handler is not None and self.framework is None:
            self.framework = "custom"
        return self

    @property
    def mode(self) -> Literal["handler", "entrypoint"]:
        return "handler" if self.handler is not None else "entrypoint"

    @property
    def target(self) -> str:
        target = self.handler if self.handler is not None else self.entrypoint
        assert target is not None  # guaranteed by _mode
        return target


# --- io_schema -------------------------------------------------------------------------


def _properties(props: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, spec in props.items():
        if not name.strip():
            raise ValueError("property names must not be blank")
        kind = spec.get("type")
        if kind is not None and kind not in JSON_TYPES:
            raise ValueError(
                f"property {name!r} has type {kind!r}; allowed types: {', '.join(JSON_TYPES)}"
            )
        if kind == "array" and "items" not in spec:
            raise ValueError(f"property {name!r} is an array and needs 'items'")
    return props


class IOSubSchema(_Section):
    type: Literal["object", "string", "number", "integer", "boolean", "array", "null"] = "object"
    properties: Annotated[dict[str, dict[str, Any]], AfterValidator(_properties)] = Field(
        default_factory=dict
    )
    required: list[str] = Field(default_factory=list)
    items: dict[str, Any] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IOSubSchema:
        seen: set[str] = set()
        duplicates: list[str] = []
        for name in self.required:
            if name in seen and name not in duplicates:
                duplicates.append(name)
            seen.add(name)
        if duplicates:
            raise ValueError(f"'required' lists {', '.join(map(repr, duplicates))} more than once")
        if self.type == "object" and self.properties:
            unknown = [name for name in self.required if name not in self.properties]
            if unknown:
                raise ValueError(
                    f"'required' names {', '.join(map(repr, unknown))}, not in 'properties' "
                    f"(declared: {', '.join(self.properties)})"
                )
        if self.type == "array" and not self.items:
            raise ValueError("type 'array' needs a non-empty 'items'")
        return self


class IOSchema(_Section):
    strict: bool = True
    input: IOSubSchema | None = None
    output: IOSubSchema | None = None


# --- expose ----------------------------------------------------------------------------


class ServerLimits(_Section):
    """What one client may hold of the server: time to send a request head, idle time
    between requests, open connections, size of a request head, size of a WebSocket
    message, how long a silent WebSocket peer is kept, and whether WebSocket messages are
    compressed."""

    # Seconds from connecting (or the first byte of the next request on a kept-alive
    # connection) until the request line and headers are complete; then the connection is
    # closed. Stops clients that send headers byte by byte from holding connections.
    header_timeout: Annotated[int, Between(1, 300)] = 10
    # Idle seconds a connection is kept open between requests.
    keep_alive_timeout: Annotated[int, Between(1, 300)] = 5
    # Open connections (SSE streams included); past it new requests get 503.
    max_connections: Annotated[int, Between(1, 1_000_000)] = 4096
    # Largest request line plus headers, in bytes; past it the request gets 400.
    max_header_bytes: Annotated[int, Between(1024, 1_048_576)] = 16384
    # Largest message a WebSocket client may send, in bytes; past it the server closes the
    # socket with 1009 before reading it whole. (The agent's input is also bounded by
    # `arguments.max_body_bytes`: 4413 PAYLOAD_TOO_LARGE.)
    websocket_max_message_bytes: Annotated[int, Between(1024, 268_435_456)] = 16_777_216
    # Seconds between the server's protocol pings on an open WebSocket; a client that does
    # not answer one within `websocket_ping_timeout` seconds loses its socket (1011).
    websocket_ping_interval: Annotated[int, Between(1, 3600)] = 20
    websocket_ping_timeout: Annotated[int, Between(1, 3600)] = 20
    # Accept a client's offer of permessage-deflate (browsers always offer it): about a
    # seventh of the bytes on the wire for event streams, at the price of compressing each
    # message (a WebSocket flood to a compressing client runs at about 0.6x the rate of
    # SSE). Off: every client gets uncompressed frames, the cheapest stream to serve.
    websocket_compression: bool = True


class AgUiConfig(_Section):
    """`POST /ag-ui`: the agent served over the AG-UI protocol to agent front ends
    (needs `dockrion-runtime[ag-ui]` and background runs, `streaming.async_runs`)."""

    enabled: bool = False
    # Handler agents (framework custom): the body field that receives the text of the last
    # user message; a LangGraph graph gets the messages themselves.
    message_field: Annotated[str, Field(min_length=1, max_length=64)] = "message"


def _transports(value: Any) -> Any:
    """One problem, in words, for a `streaming` value of neither form."""
    one = isinstance(value, str) and value in ("sse", "websocket", "none")
    several = isinstance(value, list) and bool(value)
    several = several and all(item in ("sse", "websocket") for item in value)
    if not (one or several):
        raise ValueError("must be sse, websocket or none, or a list of sse and websocket")
    if isinstance(value, list) and len(set(value)) != len(value):
        raise ValueError("each streaming transport may be listed once")
    return value


StreamingTransports = Annotated[
    list[Literal["sse", "websocket"]], Field(min_length=1, json_schema_extra={"uniqueItems": True})
]


class ExposeConfig(_Section):
    rest: bool = True
    # `sse`: POST /invoke/stream; `websocket`: WS /invoke/ws and WS /runs/{run_id}/ws;
    # both: [sse, websocket]; `none`: no live stream of Pattern A.
    streaming: Annotated[
        Literal["sse", "websocket", "none"] | StreamingTransports, BeforeValidator(_transports)
    ] = "sse"
    port: Annotated[int, Between(1, 65535)] = 8080
    host: str = "0.0.0.0"  # noqa: S104 - a server inside a container listens on every interface
    cors: dict[str, list[str]] | None = None
    limits: ServerLimits | None = None
    # A port of its own for `GET /health` and `GET /ready`, served by a thread that never
    # waits for the API's event loop, so probes answer at once however busy the API is.
    # Point orchestrator probes at it. null (the default): the probes are on `port` only.
    probe_port: Annotated[int, Between(1, 65535)] | None = None
    # Headers added to every response, over the runtime's secure defaults; null drops one.
    security_headers: dict[str, str | None] | None = None
    ag_ui: AgUiConfig | None = None
    # `GET /playground`: a page to try the agent in a browser (public static files; every
    # API call it makes carries the key the user types into it). false stops serving it.
    playground: bool = True

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "not": {
                "required": ["rest", "streaming"],
                "properties": {"rest": {"const": False}, "streaming": {"const": "none"}},
            }
        },
    )

    def serves(self, transport: Literal["sse", "websocket"]) -> bool:
        """Whether `streaming` asks for this transport (alone or in a list)."""
        streaming = self.streaming
        return transport in streaming if isinstance(streaming, list) else streaming == transport

    @model_validator(mode="after")
    def _something_exposed(self) -> ExposeConfig:
        if not self.rest and self.streaming == "none":
            raise ValueError(
                "rest: false with streaming: none exposes nothing; enable at least one"
            )
        if self.probe_port == self.port:
            raise ValueError(f"probe_port must differ from port ({self.port})")
        return self


# --- policies --------------------------------------------------------------------------


def _regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        stream_shape(pattern)  # streamed text is redacted too: refuse what it cannot hold
    return patterns


class ToolPolicy(_Section):
    allowed: list[str] = Field(default_factory=list)
    deny_by_default: bool = True


class SafetyPolicy(_Section):
    redact_patterns: Annotated[list[str], AfterValidator(_regexes)] = Field(default_factory=list)
    max_output_chars: Annotated[int | None, AfterValidator(_positive)] = None
    block_prompt_injection: bool = False
    halt_on_violation: bool = False


class Policies(_Section):
    tools: ToolPolicy | None = None
    safety: SafetyPolicy | None = None


# --- secrets ---------------------------------------------------------------------------


def _secret_name(value: str) -> str:
    if not SECRET_NAME_RE.match(value):
        raise ValueError(
            f"must be an environment variable name in UPPER_SNAKE_CASE "
            f"(^[A-Z_][A-Z0-9_]*$), got {value!r}"
        )
    return value


class SecretDefinition(_Section):
    name: Annotated[
        str,
        AfterValidator(_secret_name),
        Field(json_schema_extra={"pattern": SECRET_NAME_RE.pattern}),
    ]
    description: str | None = None
    default: str | None = None


class SecretsConfig(_Section):
    required: list[SecretDefinition] = Field(default_factory=list)
    optional: list[SecretDefinition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SecretsConfig:
        seen: set[str] = set()
        duplicates: list[str] = []
        for secret in [*self.required, *self.optional]:
            if secret.name in seen and secret.name not in duplicates:
                duplicates.append(secret.name)
            seen.add(secret.name)
        if duplicates:
            raise ValueError(
                f"secret names must be unique; declared twice: {', '.join(duplicates)}"
            )
        return self


# --- observability, build, metadata ----------------------------------------------------


class Observability(_Section):
    langfuse: dict[str, str] | None = None
    tracing: bool = True
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    metrics: dict[str, bool] = Field(
        default_factory=lambda: {"latency": True, "tokens": True, "cost": True}
    )
    # Callers see an agent's exception message only when this is switched on; by default
    # they get its type, a stable code and the request id, and the message goes to the log.
    verbose_errors: bool = False


class BuildIncludeConfig(_Section):
    directories: NonBlankList = Field(default_factory=list)
    files: NonBlankList = Field(default_factory=list)
    patterns: NonBlankList = Field(default_factory=list)


class BuildConfig(_Section):
    include: BuildIncludeConfig | None = None
    exclude: NonBlankList = Field(default_factory=list)
    auto_detect_imports: bool = False


class Metadata(_Section):
    maintainer: str | None = None
    version: str | None = None
    tags: list[str] = Field(default_factory=list)


# --- root ------------------------------------------------------------------------------


def _version(value: object) -> object:
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = f"{float(value):.1f}"
    if value not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"unsupported Dockfile version {value!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    return value


class DockSpec(_Section):
    """A whole Dockfile (`Dockfile.yaml`), validated."""

    version: Annotated[
        str,
        BeforeValidator(_version),
        WithJsonSchema({"enum": ["1.0", 1.0], "description": "Dockfile format version"}),
    ]
    agent: AgentConfig
    io_schema: IOSchema
    expose: ExposeConfig
    arguments: dict[str, Any] = Field(default_factory=dict)
    auth: AuthConfig | None = None
    policies: Policies | None = None
    secrets: SecretsConfig | None = None
    streaming: StreamingConfig | None = None
    threads: ThreadsConfig | None = None
    observability: Observability | None = None
    build: BuildConfig | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _callers_leave_room(self) -> DockSpec:
        """One caller can never take every run the memory backend may keep."""
        streaming = self.streaming
        if self.auth is None or self.auth.mode == "none":
            return self
        if streaming is not None and streaming.backend != "memory":
            return self
        memory = streaming.memory if streaming is not None else None
        max_runs = (memory or MemoryStreamingConfig()).max_runs
        bounds = [("auth.max_runs_per_caller", self.auth.max_runs_per_caller)] + [
            (f"auth.roles[{role.name}].max_runs", role.max_runs)
            for role in self.auth.roles
            if role.max_runs is not None
        ]
        for field, bound in bounds:
            if bound is not None and bound >= max_runs:
                raise ValueError(
                    f"{field} is {bound}, not below streaming.memory.max_runs ({max_runs}): one "
                    "caller could take every run the memory backend keeps; lower it or raise "
                    "streaming.memory.max_runs"
                )
        return self


SECTION_MODELS: tuple[type[BaseModel], ...] = (
    DockSpec,
    AgentConfig,
    IOSchema,
    IOSubSchema,
    ExposeConfig,
    ServerLimits,
    AgUiConfig,
    AuthConfig,
    ApiKeysConfig,
    JWTConfig,
    JWTClaimsConfig,
    OAuth2Config,
    RoleConfig,
    Policies,
    ToolPolicy,
    SafetyPolicy,
    SecretsConfig,
    SecretDefinition,
    StreamingConfig,
    RedisStreamingConfig,
    RedisSentinelConfig,
    MemoryStreamingConfig,
    StreamingIdGenerator,
    StreamingEventsConfig,
    StreamingConnectionConfig,
    ThreadsConfig,
    Observability,
    BuildConfig,
    BuildIncludeConfig,
    Metadata,
)

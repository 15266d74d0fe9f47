"""Runtime settings, built once at start-up from the validated Dockfile.

Every default comes from the schema's own models (an absent `streaming:` section reads as
`StreamingConfig()`), so a default is written in exactly one place. The `arguments`
section is free-form for the agent's own use; the keys the runtime itself reads are
declared (and checked) by `RuntimeArguments`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dockrion_events import EventsFilter
from dockrion_schema import (
    AgUiConfig,
    ApiKeysConfig,
    DockSpec,
    McpConfig,
    MemoryStreamingConfig,
    RedisStreamingConfig,
    ServerLimits,
    StreamingConfig,
    StreamingConnectionConfig,
    StreamingEventsConfig,
    ThreadsConfig,
)

__all__ = ["RuntimeArguments", "RuntimeSettings", "SettingsError"]

# What `metadata.version` defaults to when a Dockfile does not say.
DEFAULT_AGENT_VERSION = "1.0.0"


class SettingsError(Exception):
    """A Dockfile value the runtime cannot use; the message names the field."""

    code = "CONFIG_ERROR"


class RuntimeArguments(BaseModel):
    """The keys of `arguments:` that the runtime reads; any other key is the agent's."""

    model_config = ConfigDict(extra="allow", frozen=True)

    timeout_sec: float = Field(
        default=30.0, description="bound on POST /invoke in seconds; 0 or less disables it"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="largest request body")
    max_json_depth: int = Field(
        default=64, ge=1, le=200, description="deepest nesting of arrays and objects in a body"
    )
    body_timeout_sec: float = Field(
        default=30.0, gt=0, le=3600, description="time to receive a whole request body"
    )
    # Each running sync agent holds a worker thread for its whole run, so the pool is sized
    # for concurrent runs, not for CPU work (threads start lazily).
    worker_threads: int = Field(default=512, ge=1, le=100_000)


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """What the runtime needs from the Dockfile, with every default filled in."""

    spec: DockSpec
    base_dir: Path
    arguments: RuntimeArguments
    streaming: StreamingConfig
    events: StreamingEventsConfig
    connection: StreamingConnectionConfig
    events_filter: EventsFilter

    @classmethod
    def from_spec(cls, spec: DockSpec, base_dir: Path) -> RuntimeSettings:
        try:
            arguments = RuntimeArguments.model_validate(spec.arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"arguments.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise SettingsError(problems) from None
        streaming = spec.streaming or StreamingConfig()
        events = streaming.events or StreamingEventsConfig()
        return cls(
            spec=spec,
            base_dir=base_dir,
            arguments=arguments,
            streaming=streaming,
            events=events,
            connection=streaming.connection or StreamingConnectionConfig(),
            events_filter=EventsFilter(events.allowed),
        )

    # --- the agent ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.agent.name

    @property
    def framework(self) -> str:
        return self.spec.agent.framework or "custom"

    @property
    def version(self) -> str:
        metadata = self.spec.metadata
        return (metadata.version if metadata else None) or DEFAULT_AGENT_VERSION

    @property
    def description(self) -> str:
        return self.spec.agent.description or "Dockrion Agent"

    # --- limits ---------------------------------------------------------------------------

    @property
    def invoke_timeout(self) -> float | None:
        """Seconds `POST /invoke` may take, or None when the Dockfile disables the bound."""
        timeout = self.arguments.timeout_sec
        return timeout if timeout > 0 else None

    @property
    def max_body_bytes(self) -> int:
        return self.arguments.max_body_bytes

    @property
    def max_run_duration(self) -> float:
        return float(self.events.max_run_duration)

    @property
    def heartbeat_interval(self) -> float:
        return float(self.events.heartbeat_interval)

    @property
    def default_timeout(self) -> int:
        return self.connection.default_timeout

    @property
    def max_subscribers(self) -> int:
        return self.connection.max_subscribers_per_run

    # --- what is served -------------------------------------------------------------------

    @property
    def rest(self) -> bool:
        return self.spec.expose.rest

    @property
    def sse(self) -> bool:
        return self.spec.expose.serves("sse")

    @property
    def websocket(self) -> bool:
        return self.spec.expose.serves("websocket")

    @property
    def async_runs(self) -> bool:
        return self.streaming.async_runs

    @property
    def ag_ui(self) -> AgUiConfig:
        return self.spec.expose.ag_ui or AgUiConfig()

    @property
    def mcp(self) -> McpConfig:
        return self.spec.expose.mcp or McpConfig()

    @property
    def playground(self) -> bool:
        return self.spec.expose.playground

    @property
    def redis(self) -> RedisStreamingConfig:
        return self.streaming.redis or RedisStreamingConfig()

    @property
    def memory(self) -> MemoryStreamingConfig:
        return self.streaming.memory or MemoryStreamingConfig()

    @property
    def threads(self) -> ThreadsConfig:
        return self.spec.threads or ThreadsConfig()

    @property
    def limits(self) -> ServerLimits:
        return self.spec.expose.limits or ServerLimits()

    @property
    def host(self) -> str:
        return self.spec.expose.host

    @property
    def probe_port(self) -> int | None:
        return self.spec.expose.probe_port

    @property
    def security_headers(self) -> dict[str, str | None]:
        return dict(self.spec.expose.security_headers or {})

    @property
    def api_keys(self) -> ApiKeysConfig:
        auth = self.spec.auth
        return (auth.api_keys if auth else None) or ApiKeysConfig()

    @property
    def verbose_errors(self) -> bool:
        """Whether callers see an agent's exception message (else its type and a code)."""
        observability = self.spec.observability
        return bool(observability and observability.verbose_errors)

    @property
    def auth_mode(self) -> str:
        return self.spec.auth.mode if self.spec.auth else "none"

    @property
    def cors(self) -> dict[str, Any]:
        return dict(self.spec.expose.cors or {})

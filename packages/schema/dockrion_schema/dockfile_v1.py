"""Dockfile v1: the whole document (`DockSpec`), its sections, and the list of every
section model. Each section is a pydantic model in a module of its own (`_agent.py`,
`_expose.py`, `_auth.py`, `_streaming.py`, `_threads.py`, ...), with its defaults, ranges
and rules.

Rule violations raise `ValueError`, so pydantic collects every problem of a document in one
pass; `dockrion_schema.loader` turns them into located, readable issues. Unknown keys are
kept at every level (`extra="allow"`) for forward compatibility and reported as warnings by
the loader.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator

from ._a2a import A2aConfig
from ._agent import AgentConfig
from ._auth import ApiKeysConfig, AuthConfig, JWTClaimsConfig, JWTConfig, OAuth2Config, RoleConfig
from ._build import BuildConfig, BuildIncludeConfig
from ._expose import AgUiConfig, ExposeConfig, LangGraphApiConfig, ServerLimits
from ._fields import SUPPORTED_VERSIONS, _Section
from ._io_schema import IOSchema, IOSubSchema
from ._mcp import McpConfig
from ._metadata import Metadata
from ._observability import LangfuseConfig, ModelPrice, Observability
from ._policies import Budget, Policies, SafetyPolicy, ToolPolicy
from ._queue import RunQueueConfig
from ._secrets import SecretDefinition, SecretsConfig
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
        if "max_runs_per_caller" not in self.auth.model_fields_set:
            # the default gives way to a small memory backend: a tenth of what it keeps
            self.auth.max_runs_per_caller = min(
                self.auth.max_runs_per_caller, max(1, max_runs // 10)
            )
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
    McpConfig,
    A2aConfig,
    LangGraphApiConfig,
    AuthConfig,
    ApiKeysConfig,
    JWTConfig,
    JWTClaimsConfig,
    OAuth2Config,
    RoleConfig,
    Policies,
    ToolPolicy,
    SafetyPolicy,
    Budget,
    SecretsConfig,
    SecretDefinition,
    StreamingConfig,
    RedisStreamingConfig,
    RedisSentinelConfig,
    RunQueueConfig,
    MemoryStreamingConfig,
    StreamingIdGenerator,
    StreamingEventsConfig,
    StreamingConnectionConfig,
    ThreadsConfig,
    Observability,
    LangfuseConfig,
    ModelPrice,
    BuildConfig,
    BuildIncludeConfig,
    Metadata,
)

"""The `streaming` section of a Dockfile v1: the events backend (memory, Redis: one
server, a cluster or a primary found through Sentinel), the events filter and ids."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from ._fields import (
    CONFIGURABLE_EVENTS,
    CUSTOM_NAME_RE,
    EVENT_PRESETS,
    MANDATORY_EVENTS,
    Between,
    _Section,
    _target,
)
from ._queue import RunQueueConfig

# --- streaming -------------------------------------------------------------------------


HOST_PORT_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _host_ports(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("must name at least one Sentinel as 'host:port'")
    for index, value in enumerate(values):
        match = HOST_PORT_RE.match(value)
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError(
                f"item {index} must be 'host:port' (port 1-65535, an IPv6 address in "
                f"brackets), got {value!r}"
            )
    return values


class RedisSentinelConfig(_Section):
    # The primary's name as the Sentinels know it (`sentinel monitor <name> ...`).
    service_name: Annotated[str, Field(min_length=1, max_length=128)]
    # Every Sentinel's `host:port`: the client asks the first that answers where the
    # primary is, and asks again after a failover.
    sentinels: Annotated[
        list[str],
        AfterValidator(_host_ports),
        Field(
            json_schema_extra={
                "minItems": 1,
                "items": {"type": "string", "pattern": HOST_PORT_RE.pattern},
            }
        ),
    ]
    # The primary's and its replicas' password (`requirepass`), e.g. ${REDIS_PASSWORD}.
    password: str | None = None


class RedisStreamingConfig(_Section):
    url: str = "${REDIS_URL}"
    stream_ttl_seconds: Annotated[int, Between(60, 604800)] = 3600
    max_events_per_run: Annotated[int, Between(10, 100000)] = 1000
    connection_pool_size: Annotated[int, Between(1, 1000)] = 10
    key_prefix: Annotated[str, Field(min_length=1, max_length=64)] = "dockrion"
    # How long a run outlives the instance executing it before it is declared orphaned.
    lease_seconds: Annotated[int, Between(2, 300)] = 10
    # `url` names a node of a Redis Cluster (the client discovers the others); each run's
    # keys share one hash tag, so every run lives on one node.
    cluster: bool = False
    # The primary is found through Redis Sentinel, and found again after a failover; `url`
    # is then not used (and not allowed: the address comes from the Sentinels).
    sentinel: RedisSentinelConfig | None = None
    # Background runs through a queue every instance shares, and their workers.
    queue: RunQueueConfig = RunQueueConfig()

    @model_validator(mode="after")
    def _one_way_to_redis(self) -> RedisStreamingConfig:
        if self.sentinel is not None and self.cluster:
            raise ValueError(
                "'cluster' and 'sentinel' exclude each other: a Redis Cluster fails over by "
                "itself, Sentinel watches one primary and its replicas"
            )
        if self.sentinel is not None and "url" in self.model_fields_set:
            raise ValueError(
                "'url' and 'sentinel' exclude each other: with 'sentinel' the primary's address "
                "comes from the Sentinels (its password goes in sentinel.password)"
            )
        return self


class MemoryStreamingConfig(_Section):
    # How long a finished run (state and events) stays readable after it ended.
    retention_seconds: Annotated[int, Between(1, 604800)] = 3600
    # Runs kept at once; past it the run that finished first is forgotten first.
    max_runs: Annotated[int, Between(1, 1_000_000)] = 10_000
    max_events_per_run: Annotated[int, Between(10, 100000)] = 10_000
    # Conversation threads whose owner is remembered at once (each for 30 days after its
    # last run); past it, a new thread is refused until one expires.
    max_threads: Annotated[int, Between(1, 10_000_000)] = 200_000


class StreamingIdGenerator(_Section):
    type: Literal["uuid", "custom"] = "uuid"
    handler: Annotated[str | None, AfterValidator(_target("run-id generator"))] = None

    @model_validator(mode="after")
    def _handler_for_custom(self) -> StreamingIdGenerator:
        if self.type == "custom" and not self.handler:
            raise ValueError("type 'custom' needs 'handler: module:callable' returning a run id")
        return self


def validate_events_allowed(value: object) -> str | list[str] | None:
    """The grammar of `streaming.events.allowed` (shared with `dockrion_events.EventsFilter`)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in EVENT_PRESETS:
            raise ValueError(
                f"Unknown events preset {value!r}; presets: {', '.join(EVENT_PRESETS)} "
                "(or give a list of event types)"
            )
        return value
    if not isinstance(value, list):
        raise ValueError("allowed must be null, a preset string, or a list of event types")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"event types must be strings, got {item!r}")
        if item in CONFIGURABLE_EVENTS or item in MANDATORY_EVENTS or item == "custom":
            continue
        if item.startswith("custom:"):
            name = item.removeprefix("custom:")
            if not CUSTOM_NAME_RE.match(name):
                raise ValueError(f"{item!r}: custom event names match ^[a-zA-Z_][a-zA-Z0-9_]*$")
            continue
        raise ValueError(
            f"unknown event type {item!r}; valid: {', '.join(CONFIGURABLE_EVENTS)}, "
            f"{', '.join(MANDATORY_EVENTS)} (always on), custom, custom:<name>"
        )
    return value


class StreamingEventsConfig(_Section):
    allowed: Annotated[str | list[str] | None, BeforeValidator(validate_events_allowed)] = None
    heartbeat_interval: Annotated[int, Between(1, 300)] = 15
    max_run_duration: Annotated[int, Between(1, 86400)] = 3600


class StreamingConnectionConfig(_Section):
    default_timeout: Annotated[int, Between(1, 3600)] = 300
    max_subscribers_per_run: Annotated[int, Between(1, 1000)] = 100
    # How far (bytes of events) a run may get ahead of a `/invoke/stream` or `/invoke/ws`
    # client that does not read before the agent's next emit waits for it.
    max_backlog_bytes: Annotated[int, Between(16_384, 1_073_741_824)] = 1_048_576


class StreamingConfig(_Section):
    async_runs: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis: RedisStreamingConfig | None = None
    memory: MemoryStreamingConfig | None = None
    id_generator: StreamingIdGenerator | None = None
    allow_client_ids: bool = True
    events: StreamingEventsConfig | None = None
    connection: StreamingConnectionConfig | None = None

    @model_validator(mode="after")
    def _redis_defaults(self) -> StreamingConfig:
        if self.backend == "redis" and self.redis is None:
            self.redis = RedisStreamingConfig()
        return self

"""Defaults and normalisation of the models, as the Dockfile reference (generated from
these models into the docs) documents them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

import dockrion_schema
from dockrion_schema import (
    RATE_WINDOW_SECONDS,
    ApiKeysConfig,
    DockfileError,
    DockSpec,
    from_dict,
    get_schema_version,
    normalize_rate_limit,
)

BASE: dict[str, Any] = {
    "version": "1.0",
    "agent": {"name": "demo", "handler": "app:handle"},
    "io_schema": {},
    "expose": {},
}


def spec_with(**sections: Any) -> DockSpec:
    return DockSpec.model_validate({**BASE, **sections})


def test_empty_sections_expand_to_documented_defaults() -> None:
    spec = spec_with(streaming={}, auth={})
    dumped = spec.model_dump()
    assert dumped["io_schema"] == {"strict": True, "input": None, "output": None}
    assert dumped["expose"] == {
        "rest": True,
        "streaming": "sse",
        "port": 8080,
        "host": "0.0.0.0",
        "cors": None,
        "limits": None,
        "probe_port": None,
        "security_headers": None,
        "ag_ui": None,
        "playground": True,
    }
    assert dumped["streaming"] == {
        "async_runs": True,
        "backend": "memory",
        "redis": None,
        "memory": None,
        "id_generator": None,
        "allow_client_ids": True,
        "events": None,
        "connection": None,
    }
    assert dumped["auth"] == {
        "mode": "api_key",
        "api_keys": None,
        "jwt": None,
        "oauth2": None,
        "roles": [],
        "rate_limits": {},
        "max_runs_per_caller": 1000,
        "max_streams_per_caller": 2000,
    }
    assert dumped["arguments"] == {}


def test_the_per_caller_default_gives_way_to_a_small_memory_backend() -> None:
    small = spec_with(auth={"mode": "api_key"}, streaming={"memory": {"max_runs": 500}})
    assert small.auth is not None and small.auth.max_runs_per_caller == 50
    with pytest.raises(PydanticValidationError, match=r"not below streaming\.memory\.max_runs"):
        spec_with(
            auth={"mode": "api_key", "max_runs_per_caller": 500},
            streaming={"memory": {"max_runs": 500}},
        )


def test_redis_backend_gets_default_settings() -> None:
    spec = spec_with(streaming={"backend": "redis"})
    assert spec.streaming is not None and spec.streaming.redis is not None
    assert spec.streaming.redis.model_dump() == {
        "url": "${REDIS_URL}",
        "stream_ttl_seconds": 3600,
        "max_events_per_run": 1000,
        "connection_pool_size": 10,
        "key_prefix": "dockrion",
        "lease_seconds": 10,
        "cluster": False,
        "sentinel": None,
    }


def test_handler_mode_defaults_framework_to_custom() -> None:
    spec = spec_with()
    assert (spec.agent.framework, spec.agent.mode, spec.agent.target) == (
        "custom",
        "handler",
        "app:handle",
    )


def test_handler_wins_over_entrypoint_and_keeps_framework() -> None:
    spec = spec_with(
        agent={"name": "x", "handler": "a:h", "entrypoint": "a:e", "framework": "langgraph"}
    )
    assert (spec.agent.mode, spec.agent.target, spec.agent.framework) == (
        "handler",
        "a:h",
        "langgraph",
    )


def test_unquoted_version_is_normalised() -> None:
    assert spec_with(version=1.0).version == "1.0"
    assert get_schema_version() == "1.0"


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("100/hour", "100/hour"),
        ("100/h", "100/hour"),
        ("10/second", "10/second"),
        ("10/s", "10/second"),
        ("5/minutes", "5/minute"),
        ("5 / min", "5/minute"),
        ("1/d", "1/day"),
        ("7/days", "7/day"),
    ],
)
def test_rate_limit_spellings(given: str, normal: str) -> None:
    assert normalize_rate_limit(given) == normal


@pytest.mark.parametrize("bad", ["0/hour", "-1/s", "ten/s", "5/fortnight", "5", "5/"])
def test_rate_limit_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a rate limit"):
        normalize_rate_limit(bad)


def test_from_dict_reports_every_problem() -> None:
    with pytest.raises(DockfileError) as caught:
        from_dict({**BASE, "expose": {"port": 0}, "agent": {"name": "X"}})
    assert {issue.path for issue in caught.value.issues} == {"agent.name", "expose.port"}


def test_public_api_is_exactly_all() -> None:
    public = {name for name in dir(dockrion_schema) if not name.startswith("_")}
    modules = {
        "cli",
        "dockfile_v1",
        "env",
        "errors",
        "json_schema",
        "loader",
        "serialize",
        "yaml_source",
    }
    assert public - modules == set(dockrion_schema.__all__) - {"__version__"}


def test_server_limits_and_memory_retention_defaults_and_ranges() -> None:
    spec = spec_with(expose={"limits": {}}, streaming={"memory": {}})
    assert spec.expose.limits is not None and spec.streaming is not None
    assert spec.expose.limits.model_dump() == {
        "header_timeout": 10,
        "keep_alive_timeout": 5,
        "max_connections": 4096,
        "max_header_bytes": 16384,
        "websocket_max_message_bytes": 16 * 1024 * 1024,
        "websocket_ping_interval": 20,
        "websocket_ping_timeout": 20,
        "websocket_compression": True,
    }
    assert spec.streaming.memory is not None
    assert spec.streaming.memory.model_dump() == {
        "retention_seconds": 3600,
        "max_runs": 10_000,
        "max_events_per_run": 10_000,
        "max_threads": 200_000,
    }
    with pytest.raises(Exception, match="must be between 1 and 300"):
        spec_with(expose={"limits": {"header_timeout": 0}})
    with pytest.raises(Exception, match="must be between 1024 and 268435456"):
        spec_with(expose={"limits": {"websocket_max_message_bytes": 10}})
    with pytest.raises(Exception, match="must be between 1 and 3600"):
        spec_with(expose={"limits": {"websocket_ping_timeout": 0}})
    with pytest.raises(Exception, match="must be between 1 and 1000000"):
        spec_with(streaming={"memory": {"max_runs": 0}})


def test_the_probe_port_is_a_port_other_than_the_apis() -> None:
    assert spec_with(expose={"probe_port": 8081}).expose.probe_port == 8081
    with pytest.raises(Exception, match="must be between 1 and 65535"):
        spec_with(expose={"probe_port": 0})
    with pytest.raises(Exception, match="probe_port must differ from port"):
        spec_with(expose={"port": 9000, "probe_port": 9000})


def test_api_key_roles_must_name_defined_roles() -> None:
    roles = [{"name": "reader", "permissions": ["read_docs"]}]
    spec = spec_with(auth={"roles": roles, "api_keys": {"roles": {"alice": ["reader"]}}})
    assert spec.auth is not None and spec.auth.api_keys is not None
    assert spec.auth.api_keys.roles == {"alice": ["reader"]}
    with pytest.raises(DockfileError, match="does not define: writer"):
        from_dict({**BASE, "auth": {"roles": roles, "api_keys": {"roles": {"a": ["writer"]}}}})


def test_security_switches_default_to_the_safe_side() -> None:
    spec = spec_with(auth={"mode": "jwt", "jwt": {"public_key_env": "K"}}, observability={})
    assert spec.auth is not None and spec.auth.jwt is not None
    assert spec.auth.jwt.require_exp is True
    assert spec.observability is not None and spec.observability.verbose_errors is False


def test_the_prompt_injection_heuristic_is_off_unless_written() -> None:
    safety = spec_with(policies={"safety": {"redact_patterns": ["sk-[a-z]{8}"]}}).policies
    assert safety is not None and safety.safety is not None
    assert safety.safety.block_prompt_injection is False
    asked = spec_with(policies={"safety": {"block_prompt_injection": True}}).policies
    assert asked is not None and asked.safety is not None
    assert asked.safety.block_prompt_injection is True


def test_threads_keep_state_in_memory_unless_told() -> None:
    assert spec_with(threads={}).threads.model_dump() == {  # type: ignore[union-attr]
        "checkpointer": "memory",
        "path": None,
        "url": None,
        "pool_size": 10,
        "multitask_strategy": "enqueue",
        "ttl_seconds": None,
    }
    sqlite = spec_with(threads={"checkpointer": "sqlite", "path": "threads.db"}).threads
    assert sqlite is not None and sqlite.path == "threads.db"


@pytest.mark.parametrize(
    ("threads", "needs"),
    [
        ({"checkpointer": "sqlite"}, "needs 'path'"),
        ({"checkpointer": "postgres"}, "needs 'url'"),
        ({"path": "threads.db"}, "needs checkpointer 'sqlite'"),
        ({"checkpointer": "sqlite", "path": "t.db", "url": "postgresql://x"}, "'postgres'"),
        ({"pool_size": 3}, "needs checkpointer 'postgres'"),
        ({"checkpointer": "redis"}, "checkpointer"),
    ],
)
def test_threads_settings_that_cannot_work_are_refused(threads: dict[str, Any], needs: str) -> None:
    with pytest.raises(DockfileError) as refused:
        from_dict({**BASE, "threads": threads})
    assert needs in str(refused.value)


def test_every_rate_limit_window_has_its_length_in_seconds() -> None:
    spellings = ["1/s", "1/sec", "1/m", "1/min", "1/h", "1/hr", "1/hours", "2 / days", "1/d"]
    windows = {normalize_rate_limit(spelling).partition("/")[2] for spelling in spellings}
    assert windows == set(RATE_WINDOW_SECONDS)
    assert dict(RATE_WINDOW_SECONDS) == {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    with pytest.raises(TypeError):
        RATE_WINDOW_SECONDS["week"] = 604800  # type: ignore[index]


def test_api_key_rotation_is_refused_not_silently_ignored() -> None:
    assert ApiKeysConfig().rotation_days is None
    assert ApiKeysConfig.model_validate({"rotation_days": None}).rotation_days is None
    with pytest.raises(PydanticValidationError, match="is not enforced"):
        ApiKeysConfig.model_validate({"rotation_days": 30})

"""What a user sees for each kind of mistake: field path, bad value, what is allowed, where."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockrion_schema import check_dockfile_text

CORPUS = Path(__file__).parent / "corpus"

HEAD = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'


def errors(text: str) -> list[str]:
    return [str(issue) for issue in check_dockfile_text(text, "Dockfile.yaml", environ={}).errors]


def warnings(text: str) -> list[str]:
    return [str(w) for w in check_dockfile_text(text, "Dockfile.yaml", environ={}).warnings]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "heartbeat-zero.yaml",
            ["6:32 streaming.events.heartbeat_interval: must be between 1 and 300, got 0"],
        ),
        ("bad-port.yaml", ["4:16 expose.port: must be between 1 and 65535, got 70000"]),
        (
            "bad-framework.yaml",
            ["2:48 agent.framework: must be one of: langgraph, langchain, custom; got 'crewai'"],
        ),
        (
            "entrypoint-without-framework.yaml",
            ["2:1 agent: entrypoint mode needs 'framework' (one of: langgraph, langchain, custom)"],
        ),
        (
            "nothing-exposed.yaml",
            ["4:1 expose: rest: false with streaming: none exposes nothing; enable at least one"],
        ),
        ("bad-version.yaml", ["1:10 version: unsupported Dockfile version '2.0'; supported: 1.0"]),
        ("no-agent.yaml", ["1:1 agent: is required"]),
        (
            "bad-permission.yaml",
            [
                "6:45 auth.roles[0].permissions[1]: must be one of: deploy, rollback, invoke, view_metrics, key_manage, read_logs, read_docs; got 'destroy'"
            ],
        ),
        (
            "bad-log-level.yaml",
            [
                "5:28 observability.log_level: must be one of: debug, info, warn, error; got 'warning'"
            ],
        ),
        (
            "wrong-types.yaml",
            [
                "3:21 io_schema.strict: must be true or false, got 'maybe'",
                "4:16 expose.port: must be an integer, got 'eighty'",
                "4:40 expose.cors.origins: must be a list, got '*'",
            ],
        ),
        (
            "bad-backend.yaml",
            [
                "5:22 streaming.backend: must be one of: memory, redis; got 'kafka'",
                "5:57 streaming.redis.max_events_per_run: must be between 10 and 100000, got 5",
            ],
        ),
        (
            "redis-sentinel-address.yaml",
            [
                "5:83 streaming.redis.sentinel.sentinels: item 0 must be 'host:port' (port "
                "1-65535, an IPv6 address in brackets), got '10.0.0.1'"
            ],
        ),
        (
            "rotation-days.yaml",
            [
                "6:52 auth.api_keys.rotation_days: is not enforced, got 90: Dockrion neither "
                "rotates nor expires API keys; remove it, and rotate a key by changing its "
                "environment variable and restarting"
            ],
        ),
        (
            "redis-sentinel-with-url.yaml",
            [
                "7:3 streaming.redis: 'url' and 'sentinel' exclude each other: with 'sentinel' "
                "the primary's address comes from the Sentinels (its password goes in "
                "sentinel.password)"
            ],
        ),
    ],
)
def test_corpus_messages(name: str, expected: list[str]) -> None:
    text = (CORPUS / "bad" / name).read_text()
    assert errors(text) == [f"Dockfile.yaml:{line}" for line in expected]


def test_agent_name_rule() -> None:
    assert errors(HEAD.replace("demo", "1abc") + "expose: {}\n") == [
        "Dockfile.yaml:2:15 agent.name: must start with a lowercase letter and use only "
        "lowercase letters, digits and hyphens, at most 63 characters, not ending with a "
        "hyphen; got '1abc'"
    ]
    assert errors(HEAD.replace("demo", "a" * 63) + "expose: {}\n") == []
    assert len(errors(HEAD.replace("demo", "a" * 64) + "expose: {}\n")) == 1
    assert len(errors(HEAD.replace("demo", "demo-") + "expose: {}\n")) == 1


def test_handler_injection_guard() -> None:
    assert errors(HEAD.replace('"app:handle"', '"os:system; rm"') + "expose: {}\n") == [
        "Dockfile.yaml:2:30 agent.handler: must look like 'package.module:callable' (one ':', "
        "no spaces or slashes), got 'os:system; rm'; this is the handler to import"
    ]


def test_neither_handler_nor_entrypoint() -> None:
    text = 'version: "1.0"\nagent: {name: demo}\nio_schema: {}\nexpose: {}\n'
    assert errors(text) == [
        "Dockfile.yaml:2:1 agent: needs 'handler' (a callable called per request) or "
        "'entrypoint' (a factory called once) in the form 'module:callable'"
    ]


def test_io_schema_rules() -> None:
    text = (
        HEAD.replace(
            "io_schema: {}",
            "io_schema:\n  input:\n    properties:\n      q: {type: string}\n      tags: {type: array}\n"
            "    required: [q, missing, q]",
        )
        + "expose: {}\n"
    )
    assert errors(text) == [
        "Dockfile.yaml:5:5 io_schema.input.properties: property 'tags' is an array and needs 'items'",
    ]
    text = text.replace("{type: array}", "{type: array, items: {type: string}}")
    assert errors(text) == [
        "Dockfile.yaml:4:3 io_schema.input: 'required' lists 'q' more than once"
    ]
    text = text.replace("[q, missing, q]", "[q, missing]")
    assert errors(text) == [
        "Dockfile.yaml:4:3 io_schema.input: 'required' names 'missing', not in 'properties' "
        "(declared: q, tags)"
    ]


def test_array_root_needs_items() -> None:
    text = HEAD.replace("io_schema: {}", "io_schema: {output: {type: array}}") + "expose: {}\n"
    assert errors(text) == [
        "Dockfile.yaml:3:13 io_schema.output: type 'array' needs a non-empty 'items'"
    ]


def test_events_allowed_grammar() -> None:
    base = HEAD + "expose: {}\nstreaming:\n  events:\n    allowed: "
    assert errors(base + "verbose\n") == [
        "Dockfile.yaml:7:14 streaming.events.allowed: Unknown events preset 'verbose'; presets: "
        "minimal, chat, debug, all (or give a list of event types)"
    ]
    assert errors(base + "[token, custom:bad-name]\n") == [
        "Dockfile.yaml:7:14 streaming.events.allowed: 'custom:bad-name': custom event names "
        "match ^[a-zA-Z_][a-zA-Z0-9_]*$"
    ]
    assert errors(base + "[tokens]\n") == [
        "Dockfile.yaml:7:14 streaming.events.allowed: unknown event type 'tokens'; valid: token, "
        "step, progress, checkpoint, heartbeat, tool_call, tool_result, started, complete, "
        "error, cancelled (always on), custom, custom:<name>"
    ]
    assert errors(base + "[token, started, custom, custom:fraud_check]\n") == []


def test_rate_limits_accept_both_spellings_and_normalise() -> None:
    text = HEAD + "expose: {}\nauth:\n  rate_limits: {a: 100/hour, b: 10/s, c: 5/minutes, d: 1/d}\n"
    report = check_dockfile_text(text, environ={})
    assert report.spec is not None and report.spec.auth is not None
    assert report.spec.auth.rate_limits == {
        "a": "100/hour",
        "b": "10/second",
        "c": "5/minute",
        "d": "1/day",
    }
    assert errors(text.replace("1/d", "0/d")) == [
        "Dockfile.yaml:6:56 auth.rate_limits.d: '0/d' is not a rate limit; use "
        "'<count>/<window>' with a positive count and a window of second, minute, hour or day "
        "(or s, m, h, d), e.g. '100/hour'"
    ]


def test_secret_names_unique_and_upper_case() -> None:
    text = HEAD + (
        "expose: {}\nsecrets:\n  required: [{name: API_KEY}, {name: lower}]\n"
        "  optional: [{name: API_KEY}]\n"
    )
    assert errors(text) == [
        "Dockfile.yaml:6:38 secrets.required[1].name: must be an environment variable name in "
        "UPPER_SNAKE_CASE (^[A-Z_][A-Z0-9_]*$), got 'lower'",
    ]
    assert errors(text.replace("lower", "OTHER")) == [
        "Dockfile.yaml:5:1 secrets: secret names must be unique; declared twice: API_KEY"
    ]


def test_bad_regex_in_redaction() -> None:
    text = HEAD + "expose: {}\npolicies:\n  safety: {redact_patterns: ['(unclosed']}\n"
    assert errors(text) == [
        "Dockfile.yaml:6:29 policies.safety.redact_patterns: '(unclosed' is not a valid regular "
        "expression: missing ), unterminated subpattern at position 0"
    ]


def test_custom_id_generator_needs_handler() -> None:
    text = HEAD + "expose: {}\nstreaming:\n  id_generator: {type: custom}\n"
    assert errors(text) == [
        "Dockfile.yaml:6:3 streaming.id_generator: type 'custom' needs 'handler: "
        "module:callable' returning a run id"
    ]


def test_all_errors_are_reported_in_source_order() -> None:
    text = (
        'version: "1.0"\nagent: {name: demo, handler: "a:b", framework: crew}\n'
        "io_schema: {strict: 3}\nexpose: {port: -1}\nstreaming: {backend: s3}\n"
    )
    lines = [message.split(" ", 1)[0] for message in errors(text)]
    assert lines == [
        "Dockfile.yaml:2:48",
        "Dockfile.yaml:3:21",
        "Dockfile.yaml:4:16",
        "Dockfile.yaml:5:22",
    ]


def test_unknown_fields_are_kept_and_warned_with_a_suggestion() -> None:
    text = HEAD + "expose: {prot: 9000, cors: {origin: [x]}}\nstreamin: {async_runs: false}\n"
    report = check_dockfile_text(text, "Dockfile.yaml", environ={})
    assert report.ok
    assert [str(w) for w in report.warnings] == [
        "Dockfile.yaml:4:10 expose.prot: unknown field 'prot' (kept, but nothing reads it); "
        "did you mean 'port'?",
        "Dockfile.yaml:4:29 expose.cors.origin: unknown field 'origin' (kept, but nothing reads "
        "it); did you mean 'origins'?",
        "Dockfile.yaml:5:1 streamin: unknown field 'streamin' (kept, but nothing reads it); did "
        "you mean 'streaming'?",
    ]
    assert report.spec is not None
    assert report.spec.model_dump()["streamin"] == {"async_runs": False}
    assert report.spec.expose.model_extra == {"prot": 9000}


def test_warnings_still_come_when_there_are_errors() -> None:
    text = HEAD + "expose: {port: 0}\nobservabilty: {}\n"
    assert len(errors(text)) == 1
    assert len(warnings(text)) == 1


def test_port_from_a_string_is_coerced() -> None:
    report = check_dockfile_text(HEAD + 'expose: {port: "8081"}\n', environ={})
    assert report.spec is not None and report.spec.expose.port == 8081


def test_load_warns_about_unknown_fields(tmp_path: Path) -> None:
    from dockrion_schema import DockfileWarning, load_dockspec

    path = tmp_path / "Dockfile.yaml"
    path.write_text(HEAD + "expose: {}\nstreamin: {}\n")
    with pytest.warns(DockfileWarning, match="did you mean 'streaming'"):
        load_dockspec(path, environ={})


def test_sentinel_rules() -> None:
    def redis(body: str) -> list[str]:
        return errors(HEAD + f"expose: {{}}\nstreaming: {{backend: redis, redis: {body}}}\n")

    assert redis("{sentinel: {service_name: m, sentinels: []}}") == [
        "Dockfile.yaml:5:76 streaming.redis.sentinel.sentinels: must name at least one "
        "Sentinel as 'host:port'"
    ]
    assert redis("{sentinel: {service_name: m, sentinels: ['a:1', 'b:70000']}}") == [
        "Dockfile.yaml:5:76 streaming.redis.sentinel.sentinels: item 1 must be 'host:port' "
        "(port 1-65535, an IPv6 address in brackets), got 'b:70000'"
    ]
    assert redis("{sentinel: {sentinels: ['a:1']}}") == [
        "Dockfile.yaml:5:37 streaming.redis.sentinel.service_name: is required"
    ]
    assert redis("{cluster: true, sentinel: {service_name: m, sentinels: ['a:1']}}") == [
        "Dockfile.yaml:5:29 streaming.redis: 'cluster' and 'sentinel' exclude each other: a "
        "Redis Cluster fails over by itself, Sentinel watches one primary and its replicas"
    ]

"""load -> dump -> load gives an equal model, for generated Dockfiles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockrion_schema import DockSpec, parse_dockspec, to_dict, to_yaml_string

names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
targets = st.from_regex(
    r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}:[a-z_][a-z0-9_]{0,8}", fullmatch=True
)
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
json_types = st.sampled_from(["string", "number", "integer", "boolean", "object"])

properties = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True),
    st.builds(lambda t, d: {"type": t, "description": d}, json_types, text),
    max_size=4,
)


@st.composite
def io_sub_schemas(draw: st.DrawFn) -> dict[str, Any]:
    props = draw(properties)
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    return {"type": "object", "properties": props, "required": required}


agents = st.one_of(
    st.fixed_dictionaries({"name": names, "handler": targets}, optional={"description": text}),
    st.fixed_dictionaries(
        {
            "name": names,
            "entrypoint": targets,
            "framework": st.sampled_from(["langgraph", "custom"]),
        }
    ),
)
exposes = st.fixed_dictionaries(
    {},
    optional={
        "port": st.integers(1, 65535),
        "host": st.sampled_from(["0.0.0.0", "127.0.0.1", "localhost"]),
        "streaming": st.sampled_from(["sse", "websocket"]),
        "cors": st.fixed_dictionaries({"origins": st.lists(text, max_size=2)}),
    },
)
streamings = st.fixed_dictionaries(
    {},
    optional={
        "backend": st.just("memory"),
        "allow_client_ids": st.booleans(),
        "events": st.fixed_dictionaries(
            {},
            optional={
                "allowed": st.one_of(
                    st.sampled_from(["minimal", "chat", "debug", "all"]),
                    st.lists(
                        st.sampled_from(["token", "step", "custom", "custom:x_1"]), unique=True
                    ),
                ),
                "heartbeat_interval": st.integers(1, 300),
                "max_run_duration": st.integers(1, 86400),
            },
        ),
        "connection": st.fixed_dictionaries(
            {
                "default_timeout": st.integers(1, 3600),
                "max_subscribers_per_run": st.integers(1, 1000),
            }
        ),
    },
)
specs = st.fixed_dictionaries(
    {
        "version": st.just("1.0"),
        "agent": agents,
        "io_schema": st.fixed_dictionaries(
            {"strict": st.booleans()},
            optional={"input": io_sub_schemas(), "output": io_sub_schemas()},
        ),
        "expose": exposes,
    },
    optional={
        "streaming": streamings,
        "arguments": st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(), max_size=3
        ),
        "metadata": st.fixed_dictionaries(
            {"tags": st.lists(text, max_size=3)}, optional={"maintainer": text}
        ),
        "x_custom_section": st.dictionaries(
            st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(), max_size=2
        ),
    },
)


@pytest.mark.filterwarnings("ignore::dockrion_schema.DockfileWarning")
@settings(max_examples=150, deadline=None)
@given(specs)
def test_yaml_round_trip_preserves_the_model(data: dict[str, Any]) -> None:
    spec = DockSpec.model_validate(data)
    again = parse_dockspec(to_yaml_string(spec), environ={})
    assert again == spec
    assert to_dict(again) == to_dict(spec)


@pytest.mark.parametrize("literal", ["$${", "${A}", "$$${A}", "${A:-b}", "a$", "$$"])
def test_a_literal_dollar_brace_survives_the_round_trip(literal: str) -> None:
    spec = DockSpec.model_validate(
        {
            "version": "1.0",
            "agent": {"name": "ab", "handler": "a:b", "description": literal},
            "io_schema": {"strict": False},
            "expose": {},
        }
    )
    assert parse_dockspec(to_yaml_string(spec), environ={}) == spec

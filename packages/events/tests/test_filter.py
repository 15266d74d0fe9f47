"""EventsFilter: the presets (minimal, chat, debug, all), lists of types, custom names."""

from __future__ import annotations

import pytest

from dockrion_events import EventsFilter

MANDATORY = {"started", "complete", "error", "cancelled"}


@pytest.mark.parametrize(
    ("preset", "extra"),
    [
        ("minimal", set()),
        ("chat", {"token"}),
        (
            "debug",
            {"token", "step", "progress", "checkpoint", "heartbeat", "tool_call", "tool_result"},
        ),
        (
            "all",
            {"token", "step", "progress", "checkpoint", "heartbeat", "tool_call", "tool_result"}
            | {"custom"},
        ),
    ],
)
def test_presets(preset: str, extra: set[str]) -> None:
    assert EventsFilter(preset).get_allowed_events() == MANDATORY | extra


def test_none_allows_everything_and_empty_list_only_mandatory() -> None:
    everything = EventsFilter(None)
    assert everything.allows_all_custom and everything.is_allowed("custom:anything")
    nothing = EventsFilter([])
    assert nothing.get_allowed_events() == MANDATORY
    assert not nothing.is_allowed("token") and not nothing.allows_custom("x")


def test_custom_names_match_either_spelling() -> None:
    f = EventsFilter(["token", "custom:fraud_check"])
    assert f.allows_custom("fraud_check")
    assert f.is_allowed("custom:fraud_check")
    assert f.is_allowed("custom", "fraud_check")
    assert not f.allows_custom("other")
    assert not f.is_allowed("result")  # unknown non-custom types are not allowed


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="Unknown events preset"):
        EventsFilter("verbose")
    with pytest.raises(ValueError, match="unknown event type 'tokens'"):
        EventsFilter(["tokens"])
    with pytest.raises(ValueError, match="invalid custom event name"):
        EventsFilter(["custom:"])


def test_langgraph_modes() -> None:
    assert EventsFilter("minimal").get_langgraph_stream_modes() == ["values"]
    assert EventsFilter("chat").get_langgraph_stream_modes() == ["messages"]
    assert EventsFilter(["step", "custom:x"]).get_langgraph_stream_modes() == ["updates", "custom"]
    f = EventsFilter(["progress"])
    assert f.is_native_event_allowed("custom", "progress")
    assert not f.is_native_event_allowed("custom", "checkpoint")


def test_repr() -> None:
    assert repr(EventsFilter()) == "EventsFilter(all)"
    assert repr(EventsFilter("chat")) == "EventsFilter(preset='chat')"
    assert repr(EventsFilter(["token"])) == "EventsFilter(['token'])"

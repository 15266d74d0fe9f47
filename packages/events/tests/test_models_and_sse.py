"""Event shapes and the exact SSE bytes on the wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dockrion_events import (
    BaseEvent,
    EventEncodingError,
    EventRecord,
    SseParser,
    encode_comment,
    parse_sse,
)
from dockrion_events.models import (
    CompleteEvent,
    ProgressEvent,
    TokenEvent,
    create_event,
    is_terminal_event,
    parse_event,
)

STAMP = datetime(2025, 1, 15, 10, 30, 5, tzinfo=UTC)


def test_token_event_wire_bytes_are_exact() -> None:
    event = TokenEvent(
        id="evt-1a2b3c4d5e6f", run_id="run-1", sequence=5, timestamp=STAMP, content="Hello"
    )
    frame = (
        "id: 5\nevent: token\n"
        'data: {"id":"evt-1a2b3c4d5e6f","type":"token","run_id":"run-1","sequence":5,'
        '"timestamp":"2025-01-15T10:30:05+00:00","content":"Hello","finish_reason":null}\n\n'
    )
    assert EventRecord.from_event(event).frame == frame.encode()
    assert event.to_sse() == frame  # the same encoder, as text


def test_generated_ids_and_timestamps() -> None:
    event = TokenEvent(run_id="r", content="x")
    assert event.id.startswith("evt-") and len(event.id) == 16
    assert event.to_dict()["timestamp"].endswith("+00:00")


def test_progress_is_clamped() -> None:
    assert ProgressEvent(run_id="r", step="s", progress=1.7).progress == 1.0
    assert ProgressEvent(run_id="r", step="s", progress=-3).progress == 0.0


def test_parse_event_picks_the_class_and_keeps_custom_fields() -> None:
    complete = parse_event(CompleteEvent(run_id="r", output={"a": 1}).to_dict())
    assert isinstance(complete, CompleteEvent) and complete.output == {"a": 1}
    custom = parse_event({"type": "custom:fraud_check", "run_id": "r", "score": 0.5})
    assert type(custom) is BaseEvent and custom.model_extra == {"score": 0.5}
    with pytest.raises(ValueError, match="no 'type'"):
        parse_event({"run_id": "r"})


def test_terminal_types() -> None:
    assert is_terminal_event("complete") and is_terminal_event({"type": "cancelled"})
    assert is_terminal_event(create_event("error", "r", 3, error="boom"))
    assert not is_terminal_event(TokenEvent(run_id="r", content="x"))


def test_parser_round_trips_frames_split_anywhere() -> None:
    frames = [
        TokenEvent(run_id="r", sequence=i, content=f"t{i}\u00e9").to_sse().encode()
        for i in range(5)
    ]
    wire = b"retry: 3000\n\n" + encode_comment("keep-alive") + b"".join(frames)
    whole = list(parse_sse(wire))
    parser = SseParser()
    pieces = []
    for cut in range(0, len(wire), 7):
        pieces += parser.feed(wire[cut : cut + 7])  # splits multi-byte characters too
    assert [m.id for m in whole] == ["0", "1", "2", "3", "4"]
    assert [m.event for m in whole] == ["token"] * 5
    assert json.loads(whole[2].data)["content"] == "t2\u00e9"
    assert pieces == whole


def test_crlf_line_endings() -> None:
    messages = list(parse_sse("id: 1\r\nevent: x\r\ndata: {}\r\n\r\n"))
    assert [(m.id, m.event, m.data) for m in messages] == [("1", "x", "{}")]


def test_event_data_without_json_form_is_an_encoding_error_naming_the_event() -> None:
    class Opaque:
        pass

    event = create_event("custom:note", "run-1", thing=Opaque())
    with pytest.raises(EventEncodingError, match="custom:note event") as raised:
        event.to_json()
    assert raised.value.code == "INVALID_OUTPUT"
    assert isinstance(raised.value.fields["thing"], Opaque)
    with pytest.raises(EventEncodingError):
        event.to_dict()

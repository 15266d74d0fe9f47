"""The token builder's fast path makes the same event `model_construct` makes, and a token
writes the JSON pydantic writes."""

from __future__ import annotations

import pytest

from dockrion_events._builders import token
from dockrion_events.errors import EventEncodingError
from dockrion_events.models import TokenEvent


def test_the_fast_token_is_the_constructed_token() -> None:
    fast = token("run-1", 'héllo "x"\n', "stop")(7)
    slow = TokenEvent.model_construct(
        id=fast.id,
        type="token",
        run_id="run-1",
        sequence=7,
        timestamp=fast.timestamp,
        content='héllo "x"\n',
        finish_reason="stop",
    )
    assert isinstance(fast, TokenEvent)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_extra == slow.model_extra
    assert fast.to_json() == slow.to_json()
    assert fast.to_dict() == slow.to_dict()
    assert fast.model_copy(update={"sequence": 8}).sequence == 8
    assert TokenEvent.model_validate(fast.to_dict()) == fast


def test_a_token_with_its_node_keeps_the_node() -> None:
    event = token("run-1", "x", None, "agent")(0)
    assert event.to_dict()["node_name"] == "agent"


def test_the_fast_token_with_its_node_is_the_constructed_token() -> None:
    fast = token("run-1", "x", None, "agent")(3)
    slow = TokenEvent.model_construct(
        id=fast.id,
        type="token",
        run_id="run-1",
        sequence=3,
        timestamp=fast.timestamp,
        content="x",
        finish_reason=None,
        node_name="agent",
    )
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_extra == slow.model_extra == {"node_name": "agent"}
    assert fast.to_json() == slow.to_json()
    assert TokenEvent.model_validate(fast.to_dict()) == fast


@pytest.mark.parametrize(
    "content", ["t1 ", "", 'héllo "x"\n\t\x00\x1f\x7f/\\ \u2028 😀', "\x08\x0c\r"]
)
@pytest.mark.parametrize("finish_reason", [None, "stop"])
@pytest.mark.parametrize("node", [None, "chat", 'a"b\n'])
def test_a_token_writes_the_json_pydantic_writes(
    content: str, finish_reason: str | None, node: str | None
) -> None:
    event = token('run-"1', content, finish_reason, node)(7)
    assert event.to_json() == event.model_dump_json()


def test_a_token_of_another_shape_writes_the_json_pydantic_writes() -> None:
    shapes = [
        TokenEvent(run_id="r", content="x"),
        TokenEvent(run_id="r", content="x", node_name="n", other={"k": [1]}),
        TokenEvent(run_id="r", content="x", node_name=3),
        TokenEvent.model_construct(run_id="r", content="x"),
    ]
    for event in shapes:
        assert event.to_json() == event.model_dump_json()


def test_a_token_that_is_not_utf8_is_refused_as_before() -> None:
    with pytest.raises(EventEncodingError):
        token("r", "\ud800", None, "chat")(0).to_json()

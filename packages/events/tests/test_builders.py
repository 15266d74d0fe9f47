"""The token builder's fast path makes the same event `model_construct` makes."""

from __future__ import annotations

from dockrion_events._builders import token
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

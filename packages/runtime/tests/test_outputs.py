"""What real agents return reaches callers as JSON: datetimes, UUIDs, enums, decimals, sets,
tuples, dataclasses, pydantic models and LangChain messages, on every endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from dockrion_events import parse_sse

Serve = Callable[..., str]

AGENT = """
import dataclasses, datetime, decimal, enum, uuid
import pydantic
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

class Mood(enum.Enum):
    HAPPY = "happy"

class Citation(pydantic.BaseModel):
    url: str
    seen: datetime.datetime

@dataclasses.dataclass
class Score:
    value: decimal.Decimal
    tags: tuple

RUN = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)

def rich(payload, context):
    context.sync_emit("sources", when=WHEN, ids={1})
    return {
        "run": RUN,
        "when": WHEN,
        "day": WHEN.date(),
        "mood": Mood.HAPPY,
        "score": Score(decimal.Decimal("0.10"), ("a", "b")),
        "labels": {"x"},
        "citation": Citation(url="https://example.org", seen=WHEN),
        "messages": [
            HumanMessage(content=payload["query"]),
            AIMessage(content="", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "c1"}]),
            ToolMessage(content="found", tool_call_id="c1"),
            AIMessage(content="done"),
        ],
        "docs": [Document(page_content="text", metadata={"source": "s"})],
    }

class Opaque:
    pass

def ids(payload, context):
    return {"run_id": context.run_id, "thread_id": context.thread_id}

def opaque(payload):
    return {"items": [1, {"deep": Opaque()}]}

def opaque_event(payload, context):
    context.sync_emit("note", seen=[{"what": Opaque()}])
    return {"never": "returned"}
"""


def check_rich(output: dict[str, Any]) -> None:
    assert output["run"] == "12345678-1234-5678-1234-567812345678"
    assert output["when"] == "2026-11-28T09:30:00Z"
    assert output["day"] == "2026-11-28"
    assert output["mood"] == "happy"
    assert output["score"] == {"value": "0.10", "tags": ["a", "b"]}
    assert output["labels"] == ["x"]
    assert output["citation"] == {"url": "https://example.org", "seen": "2026-11-28T09:30:00Z"}
    human, call, tool, answer = output["messages"]
    assert (human["type"], human["content"]) == ("human", "q")
    assert call["tool_calls"][0]["name"] == "search"
    assert call["tool_calls"][0]["args"] == {"q": "x"}
    assert (tool["type"], tool["tool_call_id"]) == ("tool", "c1")
    assert answer["content"] == "done"
    assert output["docs"][0]["page_content"] == "text"


def test_rich_output_on_invoke(serve: Serve) -> None:
    url = serve("rich", module=AGENT)
    answer = httpx.post(f"{url}/invoke", json={"query": "q"})
    assert answer.status_code == 200, answer.text
    check_rich(answer.json()["output"])


def test_rich_output_and_event_data_on_a_stream(serve: Serve) -> None:
    url = serve("rich", module=AGENT)
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "q"}, timeout=60).content
    events = [json.loads(message.data) for message in parse_sse(raw)]
    assert [event["type"] for event in events] == ["started", "custom:sources", "complete"]
    assert events[1]["when"] == "2026-11-28T09:30:00Z"
    check_rich(events[-1]["output"])


def test_rich_output_in_a_background_run(serve: Serve) -> None:
    url = serve("rich", module=AGENT)
    run_id = httpx.post(f"{url}/runs", json={"query": "q"}).json()["run_id"]
    deadline = time.monotonic() + 60
    while (run := httpx.get(f"{url}/runs/{run_id}").json())["status"] != "COMPLETED":
        assert run["status"] in ("ACCEPTED", "RUNNING"), run
        assert time.monotonic() < deadline
        time.sleep(0.05)
    check_rich(run["output"])


def test_an_output_without_json_form_names_its_type_and_place(serve: Serve) -> None:
    url = serve("opaque", module=AGENT)
    answer = httpx.post(f"{url}/invoke", json={"query": "q"})
    assert answer.status_code == 500
    body = answer.json()
    assert body["code"] == "INVALID_OUTPUT"
    assert "output.items[1].deep" in body["error"]
    assert "Opaque" in body["error"]


def test_an_output_without_json_form_ends_a_stream_with_invalid_output(serve: Serve) -> None:
    url = serve("opaque", module=AGENT)
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "q"}, timeout=60).content
    last = json.loads(list(parse_sse(raw))[-1].data)
    assert (last["type"], last["code"]) == ("error", "INVALID_OUTPUT")
    assert "output.items[1].deep" in last["error"] and "Opaque" in last["error"]


def test_event_data_without_json_form_names_the_event_its_place_and_type(serve: Serve) -> None:
    url = serve("opaque_event", module=AGENT)
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "q"}, timeout=60).content
    events = [json.loads(message.data) for message in parse_sse(raw)]
    assert [event["type"] for event in events] == ["started", "error"]
    assert events[-1]["code"] == "INVALID_OUTPUT"
    assert "custom:note.seen[0].what" in events[-1]["error"]
    assert "Opaque" in events[-1]["error"]


def test_agent_code_reads_its_run_and_thread_ids(serve: Serve) -> None:
    url = serve("ids", module=AGENT)
    answer = httpx.post(f"{url}/invoke", json={"query": "q"}, params={"thread_id": "t-1"})
    assert answer.json()["output"]["thread_id"] == "t-1"
    assert answer.json()["output"]["run_id"]
    run_id = httpx.post(f"{url}/runs", json={"query": "q"}).json()["run_id"]
    deadline = time.monotonic() + 60
    while (run := httpx.get(f"{url}/runs/{run_id}").json())["status"] != "COMPLETED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run["output"] == {"run_id": run_id, "thread_id": None}

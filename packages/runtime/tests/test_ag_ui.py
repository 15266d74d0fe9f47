"""AG-UI (`POST /ag-ui`) on a real server: the react example (tool calls, threads, an
interrupt and its resume) and a handler agent, every event parsed with the protocol
package's own models and checked by its conformance validator; a dropped stream resumed
from its last id with nothing lost or repeated; the same auth and ownership as every
protected endpoint."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dockrion_runtime.wire
from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langgraph")
ag_ui_core = pytest.importorskip("ag_ui.core")
ag_ui_validate = pytest.importorskip("ag_ui_validate")

from pydantic import TypeAdapter  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}
EVENT = TypeAdapter(ag_ui_core.Event)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("react-ag-ui")
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        (EXAMPLE / "Dockfile.yaml").read_text()
        + "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
    )
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    environ = {"TEAM_API_KEY_ALICE": ALICE["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
    with serve_app(create_app(dockfile, environ=environ)) as base:
        yield base


def run_input(thread_id: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": f"run-{uuid.uuid4().hex[:8]}",
        "messages": list(messages),
        **extra,
    }


def user(text: str) -> dict[str, Any]:
    return {"id": f"u-{uuid.uuid4().hex[:8]}", "role": "user", "content": text}


def frames(raw: bytes) -> list[tuple[str | None, Any]]:
    """(id, event) for every frame, each event validated by the package's own models."""
    return [(m.id, EVENT.validate_json(m.data)) for m in parse_sse(raw)]


def post(
    url: str, body: dict[str, Any], headers: dict[str, str] = ALICE
) -> list[tuple[str | None, Any]]:
    response = httpx.post(f"{url}/ag-ui", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return frames(response.content)


def types(events: list[Any]) -> list[str]:
    return [event.type.value for event in events]


def check_protocol(events: list[Any], answers: tuple[str, ...] = ()) -> None:
    """Order and pairing: one run, text messages and tool calls opened, filled and closed
    in order, steps paired, and the package's validator finds no error. `answers`: tool
    calls of an earlier run (an interrupted one) whose results this run brings, which a
    validator that sees one run alone reports as unknown (AGUI207)."""
    kinds = types(events)
    assert kinds[0] == "RUN_STARTED" and kinds[-1] in ("RUN_FINISHED", "RUN_ERROR")
    assert kinds.count("RUN_STARTED") == 1 and kinds.count("RUN_FINISHED") <= 1
    open_text: str | None = None
    open_calls: set[str] = set()
    steps: list[str] = []
    for event in events:
        kind = event.type.value
        if kind == "TEXT_MESSAGE_START":
            assert open_text is None
            open_text = event.message_id
        elif kind in ("TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"):
            assert event.message_id == open_text
            if kind == "TEXT_MESSAGE_END":
                open_text = None
        elif kind == "TOOL_CALL_START":
            open_calls.add(event.tool_call_id)
        elif kind in ("TOOL_CALL_ARGS", "TOOL_CALL_END"):
            assert event.tool_call_id in open_calls
            if kind == "TOOL_CALL_END":
                open_calls.discard(event.tool_call_id)
        elif kind == "STEP_STARTED":
            steps.append(event.step_name)
        elif kind == "STEP_FINISHED":
            assert steps and steps.pop() == event.step_name
    assert open_text is None and not open_calls and not steps
    report = ag_ui_validate.pytest_plugin.validate_agui(
        [event.model_dump(mode="json", by_alias=True) for event in events]
    )
    errors = [
        d
        for d in report.diagnostics
        if d.severity == "error"
        and not (d.rule == "AGUI207" and any(a in d.message for a in answers))
    ]
    assert not errors, errors


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type.value == "TEXT_MESSAGE_CONTENT")


def dockrion_run_id(events: list[Any]) -> str:
    run_id: str = events[0].metadata["dockrion"]["run_id"]
    return run_id


def test_tool_calling_answer_streams_as_ag_ui(url: str) -> None:
    body = run_input(f"weather-{uuid.uuid4().hex[:6]}", user("what is the weather in Paris?"))
    received = post(url, body)
    events = [event for _, event in received]
    check_protocol(events)
    assert (events[0].thread_id, events[0].run_id) == (body["threadId"], body["runId"])
    (start,) = [e for e in events if e.type.value == "TOOL_CALL_START"]
    args = "".join(
        e.delta
        for e in events
        if e.type.value == "TOOL_CALL_ARGS" and e.tool_call_id == start.tool_call_id
    )
    (result,) = [e for e in events if e.type.value == "TOOL_CALL_RESULT"]
    assert (start.tool_call_name, json.loads(args)) == ("get_weather", {"city": "Paris"})
    assert (result.tool_call_id, result.content) == (start.tool_call_id, "18°C and sunny")
    # the call belongs to the assistant message streamed just before it
    first_text = next(e for e in events if e.type.value == "TEXT_MESSAGE_START")
    assert start.parent_message_id == first_text.message_id
    kinds = types(events)
    assert kinds.index("TOOL_CALL_START") < kinds.index("TOOL_CALL_RESULT")
    assert text_of(events) == "Let me check the weather.Here is what I found: 18°C and sunny."
    assert "STATE_SNAPSHOT" in kinds and events[-1].outcome is None
    # the graph's messages, as AG-UI's: the client's own ids kept, the tool call answered
    (snapshot,) = [e for e in events if e.type.value == "MESSAGES_SNAPSHOT"]
    asked, calling, tool, answer = snapshot.messages
    assert (asked.id, asked.content) == (body["messages"][0]["id"], body["messages"][0]["content"])
    (call,) = calling.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == (
        start.tool_call_id,
        "get_weather",
        args,
    )
    assert (tool.role, tool.tool_call_id, tool.content) == (
        "tool",
        start.tool_call_id,
        result.content,
    )
    assert (answer.role, answer.content) == ("assistant", "Here is what I found: 18°C and sunny.")
    assert [step.step_name for step in events if step.type.value == "STEP_FINISHED"] == [
        "agent",
        "tools",
        "agent",
    ]
    # every event carries when its stored event happened (ms since the epoch), in order
    stamps = [event.timestamp for event in events]
    assert all(stamps) and stamps == sorted(stamps)
    # every event carries an id; the last of a stored event's group is its sequence
    ids = [event_id for event_id, _ in received]
    assert all(ids) and len(set(ids)) == len(ids)
    assert ids[-1] == str(int(ids[-1]))
    # the run is a normal background run of the caller
    run = httpx.get(f"{url}/runs/{dockrion_run_id(events)}", headers=ALICE).json()
    assert run["status"] == "COMPLETED"
    assert run["metadata"]["thread_id"] == body["threadId"]


def test_second_turn_on_the_thread_remembers_the_first(url: str) -> None:
    thread = f"chat-{uuid.uuid4().hex[:6]}"
    first_user = user("what is the weather in London?")
    first = [e for _, e in post(url, run_input(thread, first_user))]
    answer = text_of(first)
    # the client sends the whole conversation back, as AG-UI clients do
    (call,) = [e for e in first if e.type.value == "TOOL_CALL_START"]
    (result,) = [e for e in first if e.type.value == "TOOL_CALL_RESULT"]
    history = [
        first_user,
        {
            "id": call.parent_message_id,
            "role": "assistant",
            "content": "Let me check the weather.",
            "toolCalls": [
                {
                    "id": call.tool_call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "London"}'},
                }
            ],
        },
        {
            "id": result.message_id,
            "role": "tool",
            "content": result.content,
            "toolCallId": call.tool_call_id,
        },
        {"id": "a-2", "role": "assistant", "content": answer},
    ]
    second = [e for _, e in post(url, run_input(thread, *history, user("thanks")))]
    check_protocol(second)
    assert text_of(second) == "You said: thanks"
    run = httpx.get(f"{url}/runs/{dockrion_run_id(second)}", headers=ALICE).json()
    contents = [m["content"] for m in run["output"]["messages"]]
    # the graph's own memory holds the first turn once; only the new message was added
    assert contents == [
        "what is the weather in London?",
        "Let me check the weather.",
        "12°C and raining",
        "Here is what I found: 12°C and raining.",
        "thanks",
        "You said: thanks",
    ]


def test_interrupt_finishes_with_its_outcome_and_resumes_with_ag_ui_resume(url: str) -> None:
    thread = f"mail-{uuid.uuid4().hex[:6]}"
    stopped = [e for _, e in post(url, run_input(thread, user("email ana@example.com hi")))]
    check_protocol(stopped)
    finished = stopped[-1]
    assert finished.type.value == "RUN_FINISHED" and finished.outcome.type == "interrupt"
    (interrupt,) = finished.outcome.interrupts
    (call,) = [e for e in stopped if e.type.value == "TOOL_CALL_START"]
    assert (interrupt.tool_call_id, interrupt.message) == (call.tool_call_id, "Send it?")
    assert interrupt.metadata["value"]["to"] == "ana@example.com"
    assert not [e for e in stopped if e.type.value == "TOOL_CALL_RESULT"]
    entry = {"interruptId": interrupt.id, "status": "resolved", "payload": {"approved": True}}
    resumed = [e for _, e in post(url, run_input(thread, resume=[entry]))]
    check_protocol(resumed, answers=(call.tool_call_id,))
    (result,) = [e for e in resumed if e.type.value == "TOOL_CALL_RESULT"]
    assert (result.tool_call_id, result.content) == (
        call.tool_call_id,
        "email to ana@example.com sent",
    )
    assert resumed[-1].outcome is None
    assert text_of(resumed) == "Here is what I found: email to ana@example.com sent."


def test_interrupt_resumes_with_langgraph_command_in_forwarded_props(url: str) -> None:
    thread = f"mail-{uuid.uuid4().hex[:6]}"
    post(url, run_input(thread, user("email bo@example.com hi")))
    props = {"command": {"resume": {"approved": False}}}
    resumed = [e for _, e in post(url, run_input(thread, forwardedProps=props))]
    (result,) = [e for e in resumed if e.type.value == "TOOL_CALL_RESULT"]
    assert result.content == "email to bo@example.com not sent: not approved"


def read_until(response: httpx.Response, stop: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    """Frames of a live response up to the first event `stop` accepts; then the connection
    is dropped by the caller."""
    received: list[tuple[str, Any]] = []
    buffer = b""
    for chunk in response.iter_bytes():
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            messages = list(parse_sse(block + b"\n\n"))
            if not messages:
                continue
            event = EVENT.validate_json(messages[0].data)
            received.append((messages[0].id or "", event))
            if stop(event):
                return received
    raise AssertionError("the stream ended first")


@pytest.mark.parametrize("cut_at", ["TOOL_CALL_START", "TEXT_MESSAGE_CONTENT"])
def test_dropped_stream_resumes_from_last_id_with_nothing_lost_or_repeated(
    url: str, cut_at: str
) -> None:
    body = run_input(f"cut-{uuid.uuid4().hex[:6]}", user("what is the weather in Tokyo?"))
    with httpx.stream("POST", f"{url}/ag-ui", json=body, headers=ALICE, timeout=60) as live:
        assert live.status_code == 200
        location = live.headers["content-location"]
        before = read_until(live, lambda e: e.type.value == cut_at)
    last_id = before[-1][0]
    rest = frames(
        httpx.get(f"{url}{location}", headers={**ALICE, "Last-Event-ID": last_id}).content
    )
    whole = frames(httpx.get(f"{url}{location}", headers=ALICE).content)
    assert [i for i, _ in before] + [i for i, _ in rest] == [i for i, _ in whole]
    assert [e for _, e in before] + [e for _, e in rest] == [e for _, e in whole]
    check_protocol([e for _, e in whole])
    assert text_of([e for _, e in whole]).endswith("22°C, clear.")
    # the run's events endpoint serves the same AG-UI stream, from a sequence too
    run_id = location.rsplit("/", 1)[1]
    from_events = frames(
        httpx.get(f"{url}/runs/{run_id}/events", params={"format": "ag-ui"}, headers=ALICE).content
    )
    assert from_events == whole
    tail = frames(
        httpx.get(
            f"{url}/runs/{run_id}/events",
            params={"format": "ag-ui", "from_sequence": "6"},
            headers=ALICE,
        ).content
    )
    assert tail == [(i, e) for i, e in whole if i is not None and int(i.split(".")[0]) >= 6]


def test_auth_and_ownership_like_every_protected_endpoint(url: str) -> None:
    body = run_input(f"owned-{uuid.uuid4().hex[:6]}", user("hello"))
    assert httpx.post(f"{url}/ag-ui", json=body).status_code == 401
    events = [e for _, e in post(url, body)]
    run_id = dockrion_run_id(events)
    # another caller can neither read the run nor continue the thread
    assert httpx.get(f"{url}/ag-ui/runs/{run_id}", headers=BOB).status_code == 404
    refused = httpx.post(f"{url}/ag-ui", json={**body, "runId": "r-bob"}, headers=BOB)
    assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"
    # the body is AG-UI's RunAgentInput and the agent's input is checked like any body
    bad = httpx.post(f"{url}/ag-ui", json={"messages": []}, headers=ALICE)
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    bad_id = httpx.get(f"{url}/ag-ui/runs/{run_id}", headers={**ALICE, "Last-Event-ID": "x"})
    assert bad_id.status_code == 400


HANDLER = """
from dockrion_events import StreamContext

async def answer(payload, context: StreamContext):
    for word in payload["query"].split():
        await context.emit_token(word + " ")
    await context.emit_progress("thinking", 0.5, "half way")
    await context.emit("citation", url="https://example.org")
    return {"answer": payload["query"].upper(), "lang": payload.get("lang")}
"""


def test_handler_agent_gets_the_last_user_message_and_forwarded_props(
    serve: Callable[..., str],
) -> None:
    base = serve(
        "answer",
        "expose:\n  host: 127.0.0.1\n  ag_ui: {enabled: true, message_field: query}\n",
        module=HANDLER,
    )
    body = run_input(
        "handler-thread",
        user("first question"),
        {"id": "a1", "role": "assistant", "content": "ok"},
        user("second question"),
        forwardedProps={"lang": "fr"},
    )
    events = post(base, body, headers={})
    kinds = types([e for _, e in events])
    check_protocol([e for _, e in events])
    assert text_of([e for _, e in events]) == "second question "
    customs = {e.name: e.value for _, e in events if e.type.value == "CUSTOM"}
    assert customs["progress"]["step"] == "thinking"
    assert customs["citation"] == {"url": "https://example.org"}
    assert "STATE_SNAPSHOT" not in kinds
    assert events[-1][1].result == {"answer": "SECOND QUESTION", "lang": "fr"}
    # no user message: the input lacks the required field, refused like any body
    refused = httpx.post(f"{base}/ag-ui", json=run_input("handler-thread"))
    assert refused.status_code == 400
    assert refused.json()["details"][0]["loc"] == ["body", "query"]


def test_ag_ui_is_off_unless_the_dockfile_enables_it(serve: Callable[..., str]) -> None:
    base = serve("answer", module=HANDLER)
    assert httpx.post(f"{base}/ag-ui", json=run_input("t", user("hi"))).status_code == 404


def test_missing_extra_is_a_clear_request_error(
    serve: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = serve("answer", "expose:\n  host: 127.0.0.1\n  ag_ui: {enabled: true}\n", HANDLER)
    # as if `dockrion-runtime[ag-ui]` were not installed: the import fails
    monkeypatch.setitem(sys.modules, "dockrion_runtime.wire.ag_ui", None)
    monkeypatch.delattr(dockrion_runtime.wire, "ag_ui", raising=False)
    refused = httpx.post(f"{base}/ag-ui", json=run_input("t", user("hi")))
    assert refused.status_code == 503
    assert "pip install 'dockrion-runtime[ag-ui]'" in refused.json()["error"]

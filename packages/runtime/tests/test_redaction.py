"""`redact_patterns` over every byte a run sends or stores, on every wire format: SSE
(`/invoke/stream`), a stored run's replay (`GET /runs/{id}/events` after it ended) and its
record (`GET /runs/{id}`), WebSocket (`/invoke/ws`, `/runs/{id}/ws`) and AG-UI; every
event type (progress, checkpoint, tool call and result, step, custom, token, complete,
error); secrets split over tokens, lookbehind and lookahead patterns; `halt_on_violation`
sending nothing that matches; terminal events the runtime's alone; `max_output_chars`
bounding the streamed text; patterns a stream cannot hold refused at start-up."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from dockrion_events import parse_sse
from dockrion_runtime import create_app
from dockrion_runtime.engine.redaction import RedactPattern, RunRedaction, StreamRedactor
from dockrion_schema import DockfileError, stream_shape

from .conftest import serve_app, write_project
from .test_websocket import read_all, ws_url

Serve = Callable[..., str]

AGENT = """
async def leak(payload, context):
    s = payload["secret"]
    await context.emit_progress("load", 0.5, f"progress {s}")
    await context.checkpoint("cp", {"note": s, s: 1})
    await context.emit_tool_call("lookup", {"q": s}, "c1")
    await context.emit_tool_result("c1", "lookup", f"result {s}")
    await context.emit_step(f"node {s}", input_keys=[s])
    await context.emit("note", body=s, nested={"deep": [s]})
    for piece in payload.get("pieces", []):
        await context.emit_token(piece)
    if payload.get("fail"):
        raise RuntimeError(f"boom {s}")
    return {"answer": s, "pieces": "".join(payload.get("pieces", []))}


def one(payload, context):
    s, kind = payload["secret"], payload["kind"]
    try:
        if kind == "progress":
            context.sync_emit_progress("load", 0.5, s)
        elif kind == "checkpoint":
            context.sync_checkpoint("cp", {"v": s})
        elif kind == "tool_call":
            context.sync_emit_tool_call("lookup", {"q": s})
        elif kind == "tool_result":
            context.sync_emit_tool_result("c1", "lookup", s)
        elif kind == "step":
            context.sync_emit_step(s)
        elif kind == "custom":
            context.sync_emit("note", body=s)
        elif kind == "token":
            context.sync_emit_token(s[:7])
            context.sync_emit_token(s[7:])
        context.sync_emit_token("after")
    except Exception as exc:
        # agent code that swallows the refusal: the run fails all the same
        return {"answer": "clean", "caught": type(exc).__name__}
    return {"answer": "clean"}


async def names_it(payload, context):
    await context.emit_progress("start", 0.1, "ok")
    await context.emit(payload["name"], value=1)
    return {"answer": "unreachable"}


async def ends_itself(payload, context):
    try:
        await context.emit_complete({"answer": payload["secret"]})
    except Exception as exc:
        await context.emit("caught", kind=type(exc).__name__, message=str(exc))
        if payload.get("reraise"):
            raise
    return {"answer": payload["secret"]}


def long_text(payload, context):
    text = payload["query"] * 50
    for i in range(0, len(text), 7):
        context.sync_emit_token(text[i : i + 7])
    return text
"""

PATTERNS = ["(?<=password=)[a-z0-9]{8}", "[0-9]{4}(?= is the pin)"]
DOCKFILE = f"""
expose:
  host: 127.0.0.1
  streaming: [sse, websocket]
  ag_ui: {{enabled: true, message_field: query}}
observability: {{verbose_errors: true}}
policies:
  safety:
    redact_patterns: {json.dumps(PATTERNS)}
"""
HALT = DOCKFILE.replace("redact_patterns:", "halt_on_violation: true\n    redact_patterns:")
SECRET = "password=hunter22"
# the lookbehind's context and the secret split; the lookahead's context arrives later
PIECES = ["my password=hun", "ter22 and 12", "34 is", " the pin"]
TEXT = "my password=[REDACTED] and [REDACTED] is the pin"
LEAKS = ("hunter22", "hunter", "ter22", "1234 is", "34 is the")
ALL_TYPES = {
    "started",
    "progress",
    "checkpoint",
    "tool_call",
    "tool_result",
    "step",
    "custom:note",
    "token",
    "complete",
}


def body(**extra: Any) -> dict[str, Any]:
    return {"query": "q", "secret": SECRET, "pieces": PIECES, **extra}


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in parse_sse(raw)]


def tokens(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "token")


def assert_clean(raw: str | bytes) -> None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    for fragment in LEAKS:
        assert fragment not in text, (fragment, text[:2000])


def run_to_end(url: str, payload: dict[str, Any]) -> tuple[str, bytes]:
    """A background run, its whole stored log read after it ended (the replay)."""
    run_id = httpx.post(f"{url}/runs", json=payload, timeout=30).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as live:
        assert live.status_code == 200
        live.read()  # the stream closes after the terminal event
    replay = httpx.get(f"{url}/runs/{run_id}/events", timeout=60)
    assert replay.status_code == 200
    return run_id, replay.content


def ag_ui_input(query: str, **props: Any) -> dict[str, Any]:
    return {
        "threadId": f"t-{uuid.uuid4().hex[:8]}",
        "runId": f"r-{uuid.uuid4().hex[:8]}",
        "messages": [{"id": "u1", "role": "user", "content": query}],
        "forwardedProps": props,
    }


@pytest.mark.parametrize("split", [False, True], ids=["one-token", "split"])
def test_every_event_type_is_redacted_on_every_wire_format(serve: Serve, split: bool) -> None:
    url = serve("leak", DOCKFILE, AGENT)
    payload = body() if split else body(pieces=["".join(PIECES)])

    streamed = httpx.post(f"{url}/invoke/stream", json=payload, timeout=60)
    events = sse_events(streamed.content)
    assert {e["type"] for e in events} == ALL_TYPES
    assert tokens(events) == TEXT
    assert events[-1]["output"] == {"answer": "password=[REDACTED]", "pieces": TEXT}
    by_type = {e["type"]: e for e in events}
    assert by_type["progress"]["message"] == "progress password=[REDACTED]"
    assert by_type["checkpoint"]["data"] == {
        "note": "password=[REDACTED]",
        "password=[REDACTED]": 1,
    }
    assert by_type["tool_call"]["arguments"] == {"q": "password=[REDACTED]"}
    assert by_type["tool_result"]["content"] == "result password=[REDACTED]"
    assert by_type["step"]["node_name"] == "node password=[REDACTED]"
    assert by_type["custom:note"]["nested"] == {"deep": ["password=[REDACTED]"]}
    assert_clean(streamed.content)

    run_id, replay = run_to_end(url, payload)
    assert tokens(sse_events(replay)) == TEXT
    assert {e["type"] for e in sse_events(replay)} == ALL_TYPES
    assert_clean(replay)
    record = httpx.get(f"{url}/runs/{run_id}").json()
    assert record["output"]["answer"] == "password=[REDACTED]"
    assert_clean(json.dumps(record))

    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps(payload))
        invoked, code, _ = read_all(socket)
    assert code == 1000 and tokens(invoked) == TEXT
    with connect(ws_url(url, f"/runs/{run_id}/ws")) as socket:
        replayed, code, _ = read_all(socket)
    assert code == 1000 and tokens(replayed) == TEXT
    assert_clean(json.dumps([invoked, replayed]))

    ag_ui = httpx.post(
        f"{url}/ag-ui",
        json=ag_ui_input("q", secret=SECRET, pieces=payload["pieces"]),
        timeout=60,
    )
    assert ag_ui.status_code == 200
    kinds = {e["type"] for e in sse_events(ag_ui.content)}
    assert {"TOOL_CALL_ARGS", "TOOL_CALL_RESULT", "CUSTOM", "TEXT_MESSAGE_CONTENT"} <= kinds
    text = "".join(
        e["delta"] for e in sse_events(ag_ui.content) if e["type"] == "TEXT_MESSAGE_CONTENT"
    )
    assert text == TEXT
    assert_clean(ag_ui.content)


def test_a_custom_event_named_with_a_secret_is_refused_not_sent(serve: Serve) -> None:
    # the name is the event's type on the wire (`custom:<name>`), which cannot be rewritten
    dockfile = DOCKFILE.replace(json.dumps(PATTERNS), json.dumps(["hunter[0-9]{2}"]))
    url = serve("names_it", dockfile, AGENT)
    name = "hunter22"  # a valid custom event name that the pattern matches
    streamed = httpx.post(f"{url}/invoke/stream", json=body(name=name), timeout=60)
    events = sse_events(streamed.content)
    assert [e["type"] for e in events] == ["started", "progress", "error"], events
    assert "matches a redaction pattern" in events[-1]["error"]
    assert name.encode() not in streamed.content
    run_id, replay = run_to_end(url, body(name=name))
    assert name.encode() not in replay
    assert name not in json.dumps(httpx.get(f"{url}/runs/{run_id}").json())


def test_error_messages_are_redacted(serve: Serve) -> None:
    url = serve("leak", DOCKFILE, AGENT)
    streamed = httpx.post(f"{url}/invoke/stream", json=body(fail=True), timeout=60)
    events = sse_events(streamed.content)
    assert events[-1]["type"] == "error"
    assert "boom password=[REDACTED]" in events[-1]["error"]
    assert_clean(streamed.content)
    run_id, replay = run_to_end(url, body(fail=True))
    assert_clean(replay)
    record = httpx.get(f"{url}/runs/{run_id}").json()
    assert record["status"] == "FAILED" and "password=[REDACTED]" in record["error"]["message"]
    assert_clean(json.dumps(record))


@pytest.mark.parametrize(
    "kind", ["progress", "checkpoint", "tool_call", "tool_result", "step", "custom", "token"]
)
def test_halt_on_violation_sends_nothing_that_matches(serve: Serve, kind: str) -> None:
    url = serve("one", HALT, AGENT)
    payload = {"query": "q", "secret": SECRET, "kind": kind}
    streamed = httpx.post(f"{url}/invoke/stream", json=payload, timeout=60)
    events = sse_events(streamed.content)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "POLICY_VIOLATION"
    assert "after" not in tokens(events)  # every emit after the match is refused too
    assert_clean(streamed.content)
    run_id, replay = run_to_end(url, payload)
    assert sse_events(replay)[-1]["code"] == "POLICY_VIOLATION"
    assert_clean(replay)
    record = httpx.get(f"{url}/runs/{run_id}").json()
    assert (record["status"], record["error"]["code"]) == ("FAILED", "POLICY_VIOLATION")
    with connect(ws_url(url, "/invoke/ws")) as socket:
        socket.send(json.dumps(payload))
        invoked, _, _ = read_all(socket)
    assert invoked[-1]["code"] == "POLICY_VIOLATION"
    assert_clean(json.dumps(invoked))
    ag_ui = httpx.post(f"{url}/ag-ui", json=ag_ui_input("q", secret=SECRET, kind=kind))
    assert_clean(ag_ui.content)
    assert sse_events(ag_ui.content)[-1]["type"] == "RUN_ERROR"


def test_agent_code_cannot_end_the_run_itself(serve: Serve) -> None:
    url = serve("ends_itself", DOCKFILE, AGENT)
    streamed = httpx.post(f"{url}/invoke/stream", json=body(), timeout=60)
    events = sse_events(streamed.content)
    caught = next(e for e in events if e["type"] == "custom:caught")
    assert caught["kind"] == "TerminalEventError"
    assert "emit_complete() is reserved" in caught["message"]
    assert [e["type"] for e in events].count("complete") == 1
    assert events[-1]["output"] == {"answer": "password=[REDACTED]"}
    assert_clean(streamed.content)
    invoked = httpx.post(f"{url}/invoke", json=body(), timeout=60).json()
    assert invoked["output"] == {"answer": "password=[REDACTED]"}
    run_id, replay = run_to_end(url, body())
    assert_clean(replay)
    record = httpx.get(f"{url}/runs/{run_id}").json()
    assert record["output"] == {"answer": "password=[REDACTED]"}
    failed = sse_events(
        httpx.post(f"{url}/invoke/stream", json=body(reraise=True), timeout=60).content
    )
    assert failed[-1]["type"] == "error"
    assert failed[-1]["details"]["error_type"] == "TerminalEventError"


def test_max_output_chars_bounds_the_streamed_text_too(serve: Serve) -> None:
    url = serve("long_text", "policies:\n  safety: {max_output_chars: 20}\n", AGENT)
    payload = {"query": "abcdefghij"}  # 500 characters, in tokens of 7
    invoked = httpx.post(f"{url}/invoke", json=payload, timeout=60).json()
    assert invoked["output"] == ("abcdefghij" * 2)
    events = sse_events(httpx.post(f"{url}/invoke/stream", json=payload, timeout=60).content)
    assert tokens(events) == "abcdefghij" * 2
    assert events[-1]["output"] == "abcdefghij" * 2
    _, replay = run_to_end(url, payload)
    assert tokens(sse_events(replay)) == "abcdefghij" * 2


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("BEGIN.*END", "an unbounded repeat ('*', '+' or '{n,}') that is not at the end"),
        ("(?:ab)+", "an unbounded repeat of a group"),
        ("token=\\\\S+?", "an unbounded lazy repeat"),
        ("a|b\\\\w+", "in an alternative ('|')"),
        ("x{1,20000}", "more than the 8192 a token stream holds back"),
    ],
)
def test_a_pattern_a_stream_cannot_hold_is_refused_at_start_up(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    dockfile = write_project(
        tmp_path, "leak", f'policies:\n  safety:\n    redact_patterns: ["{pattern}"]\n', AGENT
    )
    with pytest.raises(DockfileError) as refused:
        create_app(dockfile)
    assert construct in str(refused.value)
    assert "redact_patterns" in str(refused.value)


def test_a_trailing_run_is_followed_with_bounded_held_text() -> None:
    # `password=` then 80,000 one-character tokens: the held text never grows with the
    # run (it was all held, and all searched again on every token)
    redaction = RunRedaction([RedactPattern("password=\\S+")], halt=False, max_chars=None)
    sent = [redaction.feed("say password=")]
    most = 0
    for _ in range(80_000):
        sent.append(redaction.feed("x"))
        most = max(most, redaction.held)
    sent += [redaction.feed(" and done"), redaction.flush()]
    assert "".join(sent) == "say [REDACTED] and done"
    assert most <= 2 * stream_shape("password=\\S+").reach


def test_lookarounds_keep_the_context_they_need() -> None:
    patterns = [RedactPattern(p) for p in PATTERNS]
    for pieces in (["my password=hunter22 ok"], list("my password=hunter22 ok")):
        redactor = StreamRedactor(patterns)
        sent = "".join(redactor.feed(p) for p in pieces) + redactor.flush()
        assert sent == "my password=[REDACTED] ok"
    redactor = StreamRedactor(patterns)
    sent = "".join(redactor.feed(p) for p in ["pin 12", "34", " is the", " pin"])
    assert sent + redactor.flush() == "pin [REDACTED] is the pin"


def test_langgraph_tool_events_and_snapshots_are_redacted(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    example = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
    dockfile = tmp_path / "Dockfile.yaml"
    dockfile.write_text(
        (example / "Dockfile.yaml").read_text()
        + "policies:\n  safety:\n    redact_patterns: ['hunter[0-9]{2}', '[0-9]{1,3}°C']\n"
    )
    (tmp_path / "react.py").write_text((example / "react.py").read_text())
    with serve_app(create_app(dockfile)) as url:
        ask = "send an email to a@b.co saying the password is hunter22"
        weather = {"messages": [{"role": "user", "content": "weather in paris?"}]}
        streamed = httpx.post(f"{url}/invoke/stream", json=weather, timeout=60)
        events = sse_events(streamed.content)
        result = next(e for e in events if e["type"] == "tool_result")
        assert result["content"] == "[REDACTED] and sunny"
        assert "°C" not in streamed.text
        email = {"messages": [{"role": "user", "content": ask}]}
        streamed = httpx.post(f"{url}/invoke/stream", json=email, timeout=60)
        call = next(e for e in sse_events(streamed.content) if e["type"] == "tool_call")
        assert call["arguments"]["body"].endswith("the password is [REDACTED]")
        assert "hunter" not in streamed.text
        for question in (ask, "weather in paris?"):
            ag_ui = httpx.post(
                f"{url}/ag-ui",
                json={
                    "threadId": f"t-{uuid.uuid4().hex[:8]}",
                    "runId": f"r-{uuid.uuid4().hex[:8]}",
                    "messages": [{"id": "u1", "role": "user", "content": question}],
                },
                timeout=60,
            )
            kinds = {e["type"] for e in sse_events(ag_ui.content)}
            assert {"TOOL_CALL_ARGS", "MESSAGES_SNAPSHOT"} <= kinds
            assert "hunter" not in ag_ui.text and "°C" not in ag_ui.text

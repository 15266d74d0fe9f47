"""A2A with the real `a2a-sdk` client against a live server: the agent card, a message
streamed to completion, a task fetched, a task cancelled mid-run, a stream cut mid-answer
and resubscribed (the task as it stands, then every later update once), a LangGraph
interrupt surfaced as input-required and answered in the same context, and the refusals:
HTTP 401 without a key, another caller's task not found, JSON-RPC errors with A2A's codes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("a2a.client")
pytest.importorskip("langgraph")

from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    Client,
    ClientConfig,
    create_client,
)
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError
from google.protobuf import json_format, struct_pb2

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph-react"
ALICE = {"X-API-Key": "key-alice"}
BOB = {"X-API-Key": "key-bob"}
ENVIRON = {"TEAM_API_KEY_ALICE": ALICE["X-API-Key"], "TEAM_API_KEY_BOB": BOB["X-API-Key"]}
AUTH = "auth:\n  mode: api_key\n  api_keys: {prefix: team}\n"
# Where the captured transcripts go (the closing note's evidence), when set.
TRANSCRIPTS = os.environ.get("DOCKRION_A2A_TRANSCRIPTS")

AGENT = """
import threading
from dockrion_events import StreamContext

gates = [threading.Event(), threading.Event()]

def words(payload, context: StreamContext):
    for word in payload["query"].split():
        context.sync_emit_token(word + " ")
    context.sync_emit_progress("counted", 1.0)
    return {"answer": payload["query"].upper()}

def gated(payload, context: StreamContext):
    for stage, gate in enumerate(gates):
        for i in range(3):
            context.sync_emit_token(f"s{stage}w{i} ")
        gate.wait(120)
    for i in range(3):
        context.sync_emit_token(f"s2w{i} ")
    return {"answer": "done"}
"""


def on_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """The test's coroutine run on an event loop of its own (the server has its own)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def _project(folder: Path, handler: str) -> Path:
    (folder / "a2a_agent.py").write_text(AGENT)
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        'version: "1.0"\n'
        f'agent: {{name: a2a-agent, description: Echoes words, handler: "a2a_agent:{handler}"}}\n'
        "io_schema:\n  input:\n    type: object\n    properties: {query: {type: string}}\n"
        "    required: [query]\n"
        "expose: {host: 127.0.0.1, a2a: {enabled: true, message_field: query, tags: [echo]}}\n"
        + AUTH
    )
    return dockfile


@pytest.fixture(scope="module")
def words_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockfile = _project(tmp_path_factory.mktemp("a2a-words"), "words")
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        yield base


@pytest.fixture(scope="module")
def react_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("a2a-react")
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        (EXAMPLE / "Dockfile.yaml").read_text().replace("  ag_ui:\n", "  a2a:\n") + AUTH
    )
    (folder / "react.py").write_text((EXAMPLE / "react.py").read_text())
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        yield base


async def _client(url: str, headers: dict[str, str], streaming: bool = True) -> Client:
    http = httpx.AsyncClient(headers=headers, timeout=60)
    return await create_client(url, ClientConfig(httpx_client=http, streaming=streaming))


def _message(
    text: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    context_id: str = "",
    task_id: str = "",
) -> SendMessageRequest:
    parts = []
    if text is not None:
        parts.append(Part(text=text))
    if data is not None:
        value = struct_pb2.Value()
        value.struct_value.update(data)
        parts.append(Part(data=value))
    message = Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=parts,
        context_id=context_id,
        task_id=task_id,
    )
    return SendMessageRequest(message=message)


def _dict(response: StreamResponse | Task) -> dict[str, Any]:
    return json_format.MessageToDict(response)


def _record(name: str, lines: list[dict[str, Any]]) -> None:
    if TRANSCRIPTS:
        path = Path(TRANSCRIPTS) / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _text(artifacts: Any, name: str = "answer") -> str:
    return "".join(
        part.text
        for artifact in artifacts
        if artifact.artifact_id == name
        for part in artifact.parts
    )


async def _collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [response async for response in stream]


@on_loop
async def test_the_agent_card_names_the_skill_interface_and_security(words_url: str) -> None:
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, words_url).get_agent_card()
    assert card.name == "a2a-agent"
    assert card.capabilities.streaming
    [interface] = card.supported_interfaces
    assert (interface.url, interface.protocol_binding, interface.protocol_version) == (
        f"{words_url}/a2a",
        "JSONRPC",
        "1.0",
    )
    [skill] = card.skills
    assert skill.id == "a2a-agent" and list(skill.tags) == ["echo"]
    assert card.security_schemes["apiKey"].api_key_security_scheme.name == "X-API-Key"
    assert {next(iter(r.schemes)) for r in card.security_requirements} == {"apiKey", "bearer"}


@on_loop
async def test_a_message_streamed_to_completion_then_fetched(words_url: str) -> None:
    client = await _client(words_url, ALICE)
    stream = await _collect(client.send_message(_message("hello there agent")))
    transcript = [_dict(response) for response in stream]
    _record("stream_to_completion", transcript)
    first = stream[0]
    assert first.HasField("task")
    assert first.task.status.state == TaskState.TASK_STATE_SUBMITTED
    task_id, context_id = first.task.id, first.task.context_id
    chunks = [r.artifact_update for r in stream if r.HasField("artifact_update")]
    answer = [c for c in chunks if c.artifact.artifact_id == "answer"]
    assert "".join(c.artifact.parts[0].text for c in answer) == "hello there agent "
    assert [c.append for c in answer] == [False, True, True]
    states = [r.status_update.status.state for r in stream if r.HasField("status_update")]
    assert states[0] == TaskState.TASK_STATE_WORKING
    assert states[-1] == TaskState.TASK_STATE_COMPLETED
    progress = [
        r.status_update.status.message
        for r in stream
        if r.HasField("status_update") and r.status_update.status.message.parts
    ]
    assert progress and progress[0].parts[0].data.struct_value["step"] == "counted"
    assert all(
        (u.task_id, u.context_id) == (task_id, context_id)
        for u in [*chunks, *(r.status_update for r in stream if r.HasField("status_update"))]
    )

    task = await client.get_task(GetTaskRequest(id=task_id))
    _record("get_task", [_dict(task)])
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert _text(task.artifacts) == "hello there agent "
    [output] = [a for a in task.artifacts if a.artifact_id == "output"]
    assert output.parts[0].data.struct_value["answer"] == "HELLO THERE AGENT"
    # the same run on the runs API
    async with httpx.AsyncClient(headers=ALICE) as http:
        run = (await http.get(f"{words_url}/runs/{task_id}")).json()
    assert run["status"] == "COMPLETED"
    await client.close()


@on_loop
async def test_send_message_without_streaming_waits_for_the_task(words_url: str) -> None:
    client = await _client(words_url, ALICE, streaming=False)
    [response] = await _collect(client.send_message(_message(data={"query": "a b"})))
    assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert _text(response.task.artifacts) == "a b "
    await client.close()


@on_loop
async def test_refusals_over_http_and_as_json_rpc_errors(words_url: str) -> None:
    nobody = await _client(words_url, {})
    with pytest.raises(A2AClientError, match="401"):
        await _collect(nobody.send_message(_message("hi")))
    with pytest.raises(A2AClientError, match="401"):
        await nobody.get_task(GetTaskRequest(id="anything"))
    await nobody.close()
    alice = await _client(words_url, ALICE, streaming=False)
    [done] = await _collect(alice.send_message(_message("mine")))
    bob = await _client(words_url, BOB)
    with pytest.raises(TaskNotFoundError):  # another caller's task does not exist for Bob
        await bob.get_task(GetTaskRequest(id=done.task.id))
    with pytest.raises(TaskNotFoundError):
        await bob.cancel_task(CancelTaskRequest(id=done.task.id))
    await alice.close()
    await bob.close()
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{words_url}/a2a", json={"jsonrpc": "2.0", "id": 1})
    assert refused.status_code == 401 and "www-authenticate" in refused.headers
    assert refused.json()["code"] == "AUTH_ERROR"  # the runtime's one error body
    async with httpx.AsyncClient(headers=ALICE) as http:

        async def call(body: Any, **headers: str) -> Any:
            answer = await http.post(f"{words_url}/a2a", content=body, headers=headers)
            assert answer.status_code == 200
            return answer.json()["error"]

        assert (await call(b"{not json"))["code"] == -32700
        assert (await call(b'{"jsonrpc": "2.0", "id": 1}'))["code"] == -32600
        unknown = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "Nope", "params": {}})
        assert (await call(unknown))["code"] == -32601
        bad = {"jsonrpc": "2.0", "id": 3, "method": "SendMessage", "params": {"message": {}}}
        assert (await call(json.dumps(bad)))["code"] == -32602
        version = {"jsonrpc": "2.0", "id": 4, "method": "GetTask", "params": {"id": "x"}}
        error = await call(json.dumps(version), **{"A2A-Version": "9.9"})
        assert error["code"] == -32009
        assert error["data"][0]["reason"] == "VERSION_NOT_SUPPORTED"


@pytest.fixture
def gated_url(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    import sys

    dockfile = _project(tmp_path, "gated")
    sys.modules.pop("a2a_agent", None)
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        gates = sys.modules["a2a_agent"].gates
        try:
            yield base, gates
        finally:
            for gate in gates:
                gate.set()
    sys.modules.pop("a2a_agent", None)


@on_loop
async def test_a_task_cancelled_mid_run(gated_url: tuple[str, Any]) -> None:
    url, _ = gated_url
    client = await _client(url, ALICE)
    seen: list[StreamResponse] = []
    task_id = ""
    async for response in client.send_message(_message(data={"query": "x"})):
        seen.append(response)
        if response.HasField("artifact_update") and not task_id:
            task_id = response.artifact_update.task_id
            cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    _record("cancel_mid_run", [_dict(r) for r in seen])
    assert seen[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
    task = await client.get_task(GetTaskRequest(id=task_id))
    assert task.status.state == TaskState.TASK_STATE_CANCELED
    async with httpx.AsyncClient(headers=ALICE) as http:
        assert (await http.get(f"{url}/runs/{task_id}")).json()["status"] == "CANCELLED"
    await client.close()


@on_loop
async def test_a_cut_stream_resubscribed_gets_every_update_once(
    gated_url: tuple[str, Any],
) -> None:
    url, gates = gated_url
    client = await _client(url, ALICE)
    first: list[StreamResponse] = []
    async for response in client.send_message(_message(data={"query": "x"})):
        first.append(response)
        if len([r for r in first if r.HasField("artifact_update")]) == 2:
            break  # the client goes away mid-answer
    task_id = first[0].task.id
    gates[0].set()  # the agent goes on while nobody listens
    for _ in range(600):  # until the task holds what was sent while the client was away
        task = await client.get_task(GetTaskRequest(id=task_id))
        if _text(task.artifacts).endswith("s1w2 "):
            break
    else:
        raise AssertionError(f"the agent never reached its second gate: {task}")
    resubscribed: list[StreamResponse] = []
    async for response in client.subscribe(SubscribeToTaskRequest(id=task_id)):
        resubscribed.append(response)
        if len(resubscribed) == 1:
            gates[1].set()
    transcript = [{"stream": "first", **_dict(r)} for r in first]
    transcript += [{"stream": "resubscribed", **_dict(r)} for r in resubscribed]
    _record("resubscribe", transcript)
    snapshot = resubscribed[0].task
    assert snapshot.status.state == TaskState.TASK_STATE_WORKING
    assert _text(snapshot.artifacts) == "s0w0 s0w1 s0w2 s1w0 s1w1 s1w2 "
    later = [r.artifact_update for r in resubscribed[1:] if r.HasField("artifact_update")]
    texts = [u.artifact.parts[0].text for u in later if u.artifact.artifact_id == "answer"]
    assert texts == ["s2w0 ", "s2w1 ", "s2w2 "]
    assert all(u.append for u in later if u.artifact.artifact_id == "answer")
    assert resubscribed[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    final = await client.get_task(GetTaskRequest(id=task_id))
    assert _text(final.artifacts) == "s0w0 s0w1 s0w2 s1w0 s1w1 s1w2 s2w0 s2w1 s2w2 "
    # a finished task has nothing left to subscribe to
    with pytest.raises(UnsupportedOperationError, match="terminal"):
        await _collect(client.subscribe(SubscribeToTaskRequest(id=task_id)))
    await client.close()


@on_loop
async def test_a_langgraph_interrupt_is_input_required_then_answered(react_url: str) -> None:
    client = await _client(react_url, ALICE)
    ask = _message("please email bob@example.com about lunch")
    asked = await _collect(client.send_message(ask))
    task = asked[0].task
    status = asked[-1].status_update.status
    assert status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert status.message.parts[0].text == "Send it?"
    tools = [
        r.status_update.status.message.metadata["dockrion"]["event"]
        for r in asked
        if r.HasField("status_update") and r.status_update.status.message.metadata
    ]
    assert "tool_call" in tools
    answer = _message(data={"approved": True}, context_id=task.context_id, task_id=task.id)
    answered = await _collect(client.send_message(answer))
    _record(
        "interrupt_and_answer",
        [{"turn": "ask", **_dict(r)} for r in asked]
        + [{"turn": "answer", **_dict(r)} for r in answered],
    )
    follow_up = answered[0].task
    assert follow_up.context_id == task.context_id and follow_up.id != task.id
    assert answered[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    done = await client.get_task(GetTaskRequest(id=follow_up.id))
    assert "email to bob@example.com sent" in _text(done.artifacts)
    # the context is the caller's conversation thread, with both runs in it
    async with httpx.AsyncClient(headers=ALICE) as http:
        runs = (await http.get(f"{react_url}/threads/{task.context_id}/runs")).json()
        hidden = await http.get(f"{react_url}/threads/{task.context_id}", headers=BOB)
    listed = {run["run_id"] for run in runs["runs"]}
    assert {task.id, follow_up.id} <= listed, runs
    assert hidden.status_code == 404
    # the same interrupt cannot be answered twice
    again = _message(data={"approved": False}, context_id=task.context_id, task_id=task.id)
    with pytest.raises(UnsupportedOperationError, match="already answered"):
        await _collect(client.send_message(again))
    await client.close()


def test_every_byte_sent_over_a2a_is_redacted(serve: Callable[..., str]) -> None:
    from .test_redaction import AGENT as LEAKY
    from .test_redaction import PATTERNS, TEXT, assert_clean, body, sse_events

    url = serve(
        "leak",
        "expose: {host: 127.0.0.1, a2a: {enabled: true}}\n"
        f"policies:\n  safety:\n    redact_patterns: {json.dumps(PATTERNS)}\n",
        LEAKY,
    )
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": body()}]}
    call = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage"}
    streamed = httpx.post(f"{url}/a2a", json={**call, "params": {"message": message}}, timeout=60)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert_clean(streamed.content)
    results = [event["result"] for event in sse_events(streamed.content)]
    chunks = [r["artifactUpdate"]["artifact"] for r in results if "artifactUpdate" in r]
    answer = [c["parts"][0]["text"] for c in chunks if c["artifactId"] == "answer"]
    assert "".join(answer) == TEXT
    events = {
        r["statusUpdate"]["status"]["message"]["metadata"]["dockrion"]["event"]
        for r in results
        if "message" in r.get("statusUpdate", {}).get("status", {})
    }
    assert {"progress", "checkpoint", "tool_call", "tool_result", "step", "custom:note"} <= events
    task_id = results[0]["task"]["id"]
    fetched = httpx.post(
        f"{url}/a2a",
        json={"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}},
    )
    assert fetched.json()["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert_clean(fetched.content)

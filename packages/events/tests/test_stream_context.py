"""StreamContext: async and sync emits, worker threads, filters, closing and cancellation."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from dockrion_events import (
    EventBus,
    EventRecord,
    EventsFilter,
    InMemoryBackend,
    RunCancelledError,
    RunManager,
    StreamClosedError,
    StreamContext,
    SyncEmitRequiredError,
    TerminalEventError,
    context_scope,
    get_current_context,
)


async def new_run(
    events_filter: EventsFilter | None = None, **backend: Any
) -> tuple[RunManager, str]:
    manager = RunManager(
        EventBus(InMemoryBackend(**backend)),
        agent_name="agent",
        framework="custom",
        events_filter=events_filter,
    )
    run = await manager.create_run()
    await manager.start_run(run.run_id)
    return manager, run.run_id


async def collect(manager: RunManager, run_id: str, from_sequence: int = 0) -> list[EventRecord]:
    records: list[EventRecord] = []
    async for batch in manager.bus.subscribe(run_id, from_sequence):
        records.extend(batch)
    return records


def test_sync_agent_in_a_worker_thread_emits_100000_tokens_in_order(run_async: Any) -> None:
    count = 100_000

    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run(max_events_per_run=count + 10)
        context = manager.get_context(run_id)
        assert context is not None

        def agent() -> None:
            for i in range(count):
                context.sync_emit_token(str(i))

        reader = asyncio.create_task(collect(manager, run_id))
        await asyncio.to_thread(agent)
        await manager.set_result(run_id, {"done": True})
        return await reader

    records = run_async(scenario())
    assert [r.sequence for r in records] == list(range(count + 2))
    tokens = [r.event() for r in records[1:-1]]
    assert [t.model_dump()["content"] for t in tokens[:3]] == ["0", "1", "2"]
    assert tokens[-1].model_dump()["content"] == str(count - 1)
    assert [r.type for r in records if r.terminal] == ["complete"]


def test_sync_emits_while_the_loop_is_busy_arrive_in_one_batch(run_async: Any) -> None:
    """The first emit schedules one wake-up; the rest join it instead of adding their own."""
    appends: list[int] = []

    class CountingBackend(InMemoryBackend):
        async def append(self, run_id: str, records: Any) -> None:
            appends.append(len(records))
            await super().append(run_id, records)

    async def scenario() -> None:
        manager = RunManager(EventBus(CountingBackend()))
        run = await manager.create_run()
        context = manager.get_context(run.run_id)
        assert context is not None
        emitted = threading.Event()

        def agent() -> None:
            for _ in range(1000):
                context.sync_emit_token("x")
            emitted.set()

        worker = threading.Thread(target=agent)
        worker.start()
        emitted.wait(60)  # deliberately hold the loop: nothing can flush meanwhile
        worker.join(60)
        await context.flush()

    run_async(scenario())
    assert appends == [1000]


def test_many_threads_and_the_loop_emit_concurrently_without_gaps(run_async: Any) -> None:
    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        reader = asyncio.create_task(collect(manager, run_id))

        def worker(tag: int) -> None:
            for i in range(500):
                context.sync_emit("tick", worker=tag, i=i)

        threads = [asyncio.to_thread(worker, tag) for tag in range(3)]
        for i in range(500):
            await context.emit_token(str(i))
        await asyncio.gather(*threads)
        await manager.set_result(run_id, {})
        return await reader

    records = run_async(scenario())
    assert [r.sequence for r in records] == list(range(len(records)))
    assert len(records) == 1 + 500 + 3 * 500 + 1
    per_worker: dict[int, list[int]] = {}
    for record in records:
        if record.type == "custom:tick":
            fields = record.event().model_dump()
            per_worker.setdefault(fields["worker"], []).append(fields["i"])
    assert all(seen == list(range(500)) for seen in per_worker.values())


def test_filtered_events_consume_no_sequence(run_async: Any) -> None:
    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run(EventsFilter("chat"))
        context = manager.get_context(run_id)
        assert context is not None
        assert await context.emit_progress("p", 0.5) is None
        assert context.sync_emit_step("node") is False
        assert context.sync_emit("custom:x", a=1) is False
        assert await context.emit_token("a") is not None
        await manager.set_result(run_id, {"ok": 1})
        return await collect(manager, run_id)

    assert [(r.sequence, r.type) for r in run_async(scenario())] == [
        (0, "started"),
        (1, "token"),
        (2, "complete"),
    ]


def test_custom_event_spellings_and_names(run_async: Any) -> None:
    async def scenario() -> list[str]:
        manager, run_id = await new_run(EventsFilter(["custom:fraud_check"]))
        context = manager.get_context(run_id)
        assert context is not None
        await context.emit("custom:fraud_check", score=1)
        await context.emit("fraud_check", {"score": 2})
        context.sync_emit("fraud_check", score=3)
        assert await context.emit("other", x=1) is None
        with pytest.raises(ValueError, match="invalid custom event name 'bad-name'"):
            await context.emit("bad-name")
        with pytest.raises(ValueError, match="reserved keys sequence"):
            await context.emit("fraud_check", sequence=9)
        with pytest.raises(ValueError, match="built-in event type"):
            await context.emit("token", content="x")
        await manager.set_result(run_id, {})
        return [r.data for r in await collect(manager, run_id) if r.type.startswith("custom")]

    data = run_async(scenario())
    assert len(data) == 3
    assert all('"type":"custom:fraud_check"' in d for d in data)
    assert ['"score":1' in data[0], '"score":2' in data[1], '"score":3' in data[2]] == [True] * 3


def test_emits_after_the_terminal_event_fail_clearly(run_async: Any) -> None:
    async def scenario() -> None:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        await context.emit_complete({"done": True})
        with pytest.raises(
            StreamClosedError, match="already ended with 'complete'; cannot emit 'token'"
        ):
            await context.emit_token("late")
        with pytest.raises(StreamClosedError):
            context.sync_emit_progress("late", 1.0)
        with pytest.raises(StreamClosedError):
            await context.emit_error("again")

    run_async(scenario())


def test_cancel_makes_the_next_sync_emit_raise(run_async: Any) -> None:
    stopped_at: list[int] = []

    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        started = threading.Event()

        def agent() -> None:
            i = 0
            try:
                while i < 10_000_000:
                    context.sync_emit_token(str(i))
                    i += 1
                    if i == 10:
                        started.set()
            except RunCancelledError:
                stopped_at.append(i)

        worker = asyncio.create_task(asyncio.to_thread(agent))
        await asyncio.to_thread(started.wait, 30)
        await manager.cancel_run(run_id, "user asked")
        await worker
        return await collect(manager, run_id)

    records = run_async(scenario())
    assert stopped_at, "the agent never saw the cancellation"
    assert records[-1].type == "cancelled"
    assert [r.sequence for r in records] == list(range(len(records)))
    assert sum(r.terminal for r in records) == 1


def test_current_context_in_tasks_and_worker_threads(run_async: Any) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        with context_scope(context):
            in_task = await asyncio.create_task(asyncio.sleep(0, get_current_context()))
            in_thread = await asyncio.to_thread(get_current_context)
        return context, (in_task, in_thread), get_current_context()

    context, seen, after = run_async(scenario())
    assert seen == (context, context)
    assert after is None


def test_context_needs_a_bus_unless_queue_mode() -> None:
    with pytest.raises(ValueError, match="needs a bus"):
        StreamContext("r")
    queued = StreamContext("r", queue_mode=True)
    assert queued.sync_emit_token("a") and queued.sync_emit_progress("p", 2.0)
    events = queued.drain_queued_events()
    assert [(e.type, e.sequence) for e in events] == [("token", 0), ("progress", 1)]
    assert queued.queue_size() == 0


def test_tool_calls_and_results_are_events_of_their_own() -> None:
    asyncio.run(_tool_events())


async def _tool_events() -> None:
    from dockrion_events import EventBus, EventsFilter, InMemoryBackend, Run

    backend = InMemoryBackend()
    await backend.create_run(Run(run_id="tools"))
    await backend.start_run("tools")
    bus = EventBus(backend)
    context = StreamContext("tools", bus, events_filter=EventsFilter("debug"))
    await context.emit_tool_call("search", {"q": "x"}, "call-1", node_name="agent")
    await context.emit_tool_result("call-1", "search", "found", node_name="tools")
    await context.emit_token("done", node_name="agent")
    chat = StreamContext("tools", bus, events_filter=EventsFilter("chat"))
    assert await chat.emit_tool_call("search") is None  # the chat preset leaves them out
    await context.flush()
    events = [e.to_dict() for e in await bus.get_events("tools")]
    call, result, token = events
    assert (call["type"], call["name"], call["arguments"], call["call_id"]) == (
        "tool_call",
        "search",
        {"q": "x"},
        "call-1",
    )
    assert (result["type"], result["call_id"], result["content"], result["is_error"]) == (
        "tool_result",
        "call-1",
        "found",
        False,
    )
    assert (token["content"], token["node_name"]) == ("done", "agent")


class _HoldLastChar:
    """Holds back the last character of each feed; upper-cases what it releases, and
    every other value's strings."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str) -> str:
        text, self.held = (self.held + text)[:-1], (self.held + text)[-1:]
        return text.upper()

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held.upper()

    def scrub(self, value: Any, *, may_refuse: bool = True) -> Any:
        if isinstance(value, str):
            return value.upper()
        if isinstance(value, dict):
            return {k.upper(): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value


def test_redaction_rewrites_holds_and_flushes_tokens_before_complete(run_async: Any) -> None:
    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        context.redaction = _HoldLastChar()
        await context.emit_token("a")  # all held: no event
        context.sync_emit_token("bc")
        await context.emit_complete({"done": True})
        return await collect(manager, run_id)

    records = run_async(scenario())
    tokens = [json.loads(r.data)["content"] for r in records if r.type == "token"]
    assert tokens == ["AB", "C"]
    assert records[-1].type == "complete"


def test_auth_and_tool_policy_defaults(run_async: Any) -> None:
    from dockrion_events import AuthContext

    async def scenario() -> None:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        assert context.auth == AuthContext() and not context.auth.authenticated
        assert context.is_tool_allowed("anything")
        context.auth = AuthContext(method="jwt", principal_id="jwt:alice", roles=("admin",))
        context.tool_check = {"search"}.__contains__
        assert context.auth.has_role("admin") and context.auth.authenticated
        assert context.is_tool_allowed("search") and not context.is_tool_allowed("shell")

    run_async(scenario())


def test_redaction_rewrites_every_field_of_every_event_and_the_run(run_async: Any) -> None:
    async def scenario() -> tuple[list[EventRecord], Any]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        context.redaction = _HoldLastChar()
        await context.emit_progress("load", 0.5, "secret message")
        await context.checkpoint("cp", {"key": ["secret"]})
        await context.emit_tool_call("search", {"q": "secret"}, "c1")
        context.sync_emit_tool_result("c1", "search", [{"text": "secret"}])
        context.sync_emit_step("node", input_keys=["secret"])
        await context.emit("NOTE", body="secret")  # a name redaction leaves as it is
        context.sync_emit("NOTE", {"body": "secret"})
        # a name redaction would change is refused, on both paths, without repeating it
        with pytest.raises(ValueError, match="matches a redaction pattern") as refused:
            await context.emit("note", body="x")
        assert "note" not in str(refused.value)
        with pytest.raises(ValueError, match="matches a redaction pattern"):
            context.sync_emit("note", {"body": "x"})
        await context.emit_error("secret failure", "X", {"why": "secret"})
        return await collect(manager, run_id), await manager.get_run(run_id)

    records, run = run_async(scenario())
    text = json.dumps([json.loads(r.data) for r in records[1:]])
    assert "secret" not in text and "SECRET" in text
    assert run.error == {"message": "SECRET FAILURE", "code": "X", "details": {"WHY": "SECRET"}}


def test_terminal_events_reserved_by_a_server_raise_for_agent_code(run_async: Any) -> None:
    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        ending = context.reserve_terminal_events()
        with pytest.raises(TerminalEventError, match=r"emit_complete\(\) is reserved"):
            await context.emit_complete({"raw": True})
        with pytest.raises(TerminalEventError, match="raise an exception"):
            await context.emit_error("no")
        with pytest.raises(TerminalEventError):
            await context.emit_cancelled()
        await context.emit_token("still open")
        await ending.complete({"from": "server"})
        return await collect(manager, run_id)

    records = run_async(scenario())
    assert [r.type for r in records] == ["started", "token", "complete"]
    assert json.loads(records[-1].data)["output"] == {"from": "server"}


def test_an_unreserved_context_still_ends_its_own_run(run_async: Any) -> None:
    async def scenario() -> list[EventRecord]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        await context.emit_complete({"done": True})
        return await collect(manager, run_id)

    assert run_async(scenario())[-1].type == "complete"


def test_an_async_emit_from_a_plain_def_fails_at_the_call_not_silently(run_async: Any) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        manager, run_id = await new_run()
        context = manager.get_context(run_id)
        assert context is not None
        problems: list[str] = []

        def plain_def_handler() -> None:
            # forgot `sync_`: no loop runs in a worker thread, so nothing could await this
            for call in (
                lambda: context.emit_token("lost"),
                lambda: context.emit("note", word="lost"),
                lambda: context.emit_progress("step", 0.5),
                lambda: context.emit_step("node"),
                lambda: context.emit_tool_call("search"),
                lambda: context.emit_tool_result("c1"),
                lambda: context.checkpoint("c"),
            ):
                with pytest.raises(SyncEmitRequiredError) as refused:
                    call()
                problems.append(str(refused.value))
            context.sync_emit_token("kept")

        await asyncio.to_thread(plain_def_handler)
        await context.emit_token("awaited")  # in the loop, the async call still works
        await context.emit_complete({})
        return problems, [r.type for r in await collect(manager, run_id)]

    problems, types = run_async(scenario())
    assert "context.sync_emit_token(...)" in problems[0]
    assert "await context.emit_token(...)" in problems[0]
    assert "context.sync_emit(...)" in problems[1]
    assert "context.sync_checkpoint(...)" in problems[-1]
    assert types == ["started", "token", "token", "complete"]

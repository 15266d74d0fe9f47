"""The run log and run lifecycle: ids, transitions, races, retention, expiry, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockrion_events import (
    BackendConnectionError,
    EventBackend,
    EventBus,
    EventRecord,
    EventsExpiredError,
    InMemoryBackend,
    InvalidRunIdError,
    RunExistsError,
    RunFinishedError,
    RunManager,
    RunNotFoundError,
    RunStatus,
)

Make = Callable[..., EventBackend]


def manager(make_backend: Make, **backend: Any) -> RunManager:
    return RunManager(EventBus(make_backend(**backend)), agent_name="a", framework="custom")


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("", "cannot be empty"),
        ("x" * 129, "128 characters or less"),
        ("_private", "cannot start with underscore"),
        ("has space", "use only letters, digits, hyphens and underscores"),
        ("../etc", "use only letters"),
    ],
)
def test_invalid_client_ids(run_async: Any, make_backend: Make, run_id: str, message: str) -> None:
    with pytest.raises(InvalidRunIdError, match=message):
        run_async(manager(make_backend).create_run(run_id))


def test_duplicate_and_disallowed_ids(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        runs = manager(make_backend)
        await runs.create_run("job-1")
        with pytest.raises(RunExistsError, match="Run id 'job-1' is already in use"):
            await runs.create_run("job-1")
        strict = RunManager(EventBus(make_backend()), allow_client_ids=False)
        with pytest.raises(InvalidRunIdError, match="not allowed"):
            await strict.create_run("job-2")
        counter = iter(range(100))
        custom = RunManager(
            EventBus(InMemoryBackend()), id_generator=lambda: f"job-{next(counter)}"
        )
        assert (await custom.create_run()).run_id == "job-0"

    run_async(scenario())


def test_lifecycle_and_final_states(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        runs = manager(make_backend)
        run = await runs.create_run(metadata={"k": "v"})
        assert run.status == RunStatus.ACCEPTED
        assert (await runs.start_run(run.run_id)).status == RunStatus.RUNNING
        done = await runs.set_result(run.run_id, {"answer": 42}, latency_seconds=0.5)
        assert done.status == RunStatus.COMPLETED and done.output == {"answer": 42}
        assert done.completed_at is not None
        with pytest.raises(RunFinishedError, match="already finished with status COMPLETED"):
            await runs.cancel_run(run.run_id)
        with pytest.raises(RunNotFoundError, match="Run 'nope' not found"):
            await runs.cancel_run("nope")
        failed = await runs.create_run()
        await runs.start_run(failed.run_id)
        failed = await runs.set_error(failed.run_id, "boom", "AGENT_EXECUTION_ERROR", {"x": 1})
        assert failed.error == {
            "message": "boom",
            "code": "AGENT_EXECUTION_ERROR",
            "details": {"x": 1},
        }
        queued = await runs.create_run()
        cancelled = await runs.cancel_run(queued.run_id, "changed my mind")
        assert cancelled.status == RunStatus.CANCELLED
        with pytest.raises(RunFinishedError):
            await runs.start_run(queued.run_id)
        stats = await runs.get_stats()
        assert (stats["COMPLETED"], stats["FAILED"], stats["CANCELLED"], stats["total"]) == (
            1,
            1,
            1,
            3,
        )

    run_async(scenario())


def test_listing_runs_by_status_and_owner_newest_first(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        runs = manager(make_backend)
        for index in range(5):
            await runs.create_run(f"list-{index}", owner="alice" if index % 2 else "bob")
        await runs.start_run("list-0")
        await runs.set_result("list-0", {"ok": True})  # the most recently active run

        def ids(listed: list[Any]) -> list[str]:
            return [run.run_id for run in listed]

        assert ids(await runs.list_runs()) == ["list-4", "list-3", "list-2", "list-1", "list-0"]
        assert ids(await runs.list_runs(limit=2)) == ["list-4", "list-3"]
        assert ids(await runs.list_runs(owner="alice")) == ["list-3", "list-1"]
        assert ids(await runs.list_runs(RunStatus.COMPLETED)) == ["list-0"]
        assert ids(await runs.list_runs(RunStatus.ACCEPTED, owner="bob")) == ["list-4", "list-2"]

    run_async(scenario())


def test_cancel_racing_complete_ends_in_one_consistent_state(
    run_async: Any, make_backend: Make
) -> None:
    async def one_race(seed: int) -> tuple[str, list[str]]:
        rng = random.Random(seed)
        runs = manager(make_backend)
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        context = runs.get_context(run.run_id)
        assert context is not None

        async def complete() -> None:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            try:
                await context.emit_token("t")
                await runs.set_result(run.run_id, {"ok": True})
            except (RunFinishedError, RunNotFoundError):
                pass
            except Exception as exc:  # RunCancelledError from the token emit
                assert type(exc).__name__ in {"RunCancelledError", "StreamClosedError"}

        async def cancel() -> None:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            with contextlib.suppress(RunFinishedError):
                await runs.cancel_run(run.run_id, "race")

        tasks = [complete(), cancel()]
        rng.shuffle(tasks)
        await asyncio.gather(*tasks)
        final = await runs.get_run(run.run_id)
        assert final is not None
        records = await runs.bus.replay(run.run_id)
        assert [r.sequence for r in records] == list(range(len(records)))
        return final.status.value, [r.type for r in records if r.terminal]

    # Each race makes its own backend: a cluster client discovers the cluster each time.
    races = 60 if make_backend.kind == "redis-cluster" else 300  # type: ignore[attr-defined]

    async def scenario() -> set[str]:
        outcomes = set()
        for seed in range(races):
            status, terminals = await one_race(seed)
            assert len(terminals) == 1, terminals
            assert {"COMPLETED": "complete", "CANCELLED": "cancelled"}[status] == terminals[0]
            outcomes.add(status)
        return outcomes

    outcomes = run_async(scenario())
    if make_backend.kind == "memory":  # type: ignore[attr-defined]
        # deterministic scheduling: the seeds are known to produce both outcomes
        assert outcomes == {"COMPLETED", "CANCELLED"}
    else:
        assert outcomes <= {"COMPLETED", "CANCELLED"} and outcomes


def test_late_subscriber_gets_full_replay_then_the_stream_closes(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> tuple[list[int], list[int], list[int]]:
        runs = manager(make_backend)
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        context = runs.get_context(run.run_id)
        assert context is not None
        for i in range(5):
            await context.emit_token(str(i))
        await runs.set_result(run.run_id, {})
        seqs: list[list[int]] = []
        for start in (0, 3, 7):
            got: list[int] = []
            async for batch in runs.bus.subscribe(run.run_id, start):
                got += [r.sequence for r in batch]
            seqs.append(got)
        return seqs[0], seqs[1], seqs[2]

    full, from3, past_end = run_async(scenario())
    assert full == [0, 1, 2, 3, 4, 5, 6]
    assert from3 == [3, 4, 5, 6]
    assert past_end == []


def test_retention_bound_and_the_expired_cursor_error(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        runs = manager(make_backend, max_events_per_run=20)
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        context = runs.get_context(run.run_id)
        assert context is not None
        for i in range(200):
            await context.emit_token(str(i))
        await runs.set_result(run.run_id, {})
        stored = await runs.bus.replay(run.run_id, 190)
        assert [r.sequence for r in stored] == list(range(190, 202))
        with pytest.raises(EventsExpiredError) as caught:
            await runs.bus.replay(run.run_id, 0)
        first = caught.value.first_available
        assert 0 < first <= 182  # Redis trims approximately (MAXLEN ~): it may keep more
        assert caught.value.code == "EVENTS_EXPIRED"
        assert f"resume from {first} or later" in str(caught.value)
        kept = await runs.bus.replay(run.run_id, first)
        assert [r.sequence for r in kept] == list(range(first, 202))

    run_async(scenario())


def test_finished_runs_expire_after_the_ttl_in_memory(run_async: Any) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend(ttl_seconds=0.0)
        runs = RunManager(EventBus(backend))
        live = await runs.create_run()
        done = await runs.create_run()
        await runs.cancel_run(done.run_id)
        assert await runs.get_run(done.run_id) is None
        assert await runs.get_run(live.run_id) is not None
        assert backend.run_count() == 1

    run_async(scenario())


def test_idle_subscribers_get_heartbeat_ticks_that_store_nothing(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        runs = manager(make_backend)
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        context = runs.get_context(run.run_id)
        assert context is not None
        sizes: list[int] = []
        seqs: list[int] = []
        idle_three_times = asyncio.Event()

        async def subscriber() -> None:
            async for batch in runs.bus.subscribe(run.run_id, heartbeat=0.01):
                sizes.append(len(batch))
                seqs.extend(r.sequence for r in batch)
                if sizes.count(0) >= 3:
                    idle_three_times.set()

        task = asyncio.create_task(subscriber())
        await asyncio.wait_for(idle_three_times.wait(), 60)
        await context.emit_token("after idle")
        await runs.set_result(run.run_id, {})
        await task
        return sizes, seqs

    sizes, seqs = run_async(scenario())
    assert 0 in sizes
    assert seqs == [0, 1, 2]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 80), st.integers(1, 30)),
        min_size=1,
        max_size=12,
    ),
    total=st.integers(1, 60),
    seed=st.integers(0, 2**16),
)
def test_subscribers_joining_leaving_and_rejoining_see_contiguous_logs(
    run_async: Any, make_backend: Make, plan: list[tuple[int, int, int]], total: int, seed: int
) -> None:
    """One producer; subscribers join at random cursors and moments, read a few events,
    disconnect, and rejoin from the last sequence they saw (Last-Event-ID)."""

    async def scenario() -> None:
        rng = random.Random(seed)
        runs = manager(make_backend)
        run = await runs.create_run()
        context = runs.get_context(run.run_id)
        assert context is not None

        async def producer() -> None:
            await runs.start_run(run.run_id)
            for i in range(total):
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
                await context.emit_token(str(i))
            await runs.set_result(run.run_id, {"n": total})

        async def subscriber(join_after: int, cursor: int, chunk: int) -> list[EventRecord]:
            for _ in range(join_after):
                await asyncio.sleep(0)
            cursor = min(cursor, total + 1)
            seen: list[EventRecord] = []
            while True:
                taken = 0
                async for batch in runs.bus.subscribe(run.run_id, cursor):
                    seen.extend(batch)
                    cursor = batch[-1].sequence + 1 if batch else cursor
                    taken += len(batch)
                    if taken >= chunk:
                        break  # disconnect; rejoin from the last event seen
                if seen and seen[-1].terminal:
                    return seen
                if taken < chunk:
                    return seen

        start = min(c for _, c, _ in plan)
        results = await asyncio.gather(producer(), *(subscriber(j, c, k) for j, c, k in plan))
        for (_, cursor, _), seen in zip(plan, results[1:], strict=True):
            first = min(cursor, total + 1)
            assert [r.sequence for r in seen] == list(range(first, total + 2)), (first, start)
            assert sum(r.terminal for r in seen) == 1
            assert seen[-1].type == "complete"

    run_async(scenario())


def test_importing_events_does_not_import_web_or_redis_libraries() -> None:
    code = (
        "import sys, dockrion_events\n"
        "loaded = {'starlette', 'uvicorn', 'redis', 'anyio'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_thread_belongs_to_its_first_claimant(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        backend = make_backend()
        assert await backend.claim_thread("t-1", "alice", 60) == "alice"
        assert await backend.claim_thread("t-1", "alice", 60) == "alice"  # renewed
        assert await backend.claim_thread("t-1", "bob", 60) == "alice"  # refused
        assert await backend.claim_thread("t-2", "bob", 60) == "bob"

    run_async(scenario())


def test_a_resume_is_claimed_once(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        backend = make_backend()
        claims = await asyncio.gather(*(backend.claim_resume("run-1", 60) for _ in range(5)))
        assert sorted(claims) == [False, False, False, False, True]  # one wins, at once
        assert await backend.claim_resume("run-2", 60) is True  # another run's is its own
        await backend.release_resume("run-1")  # its run could not be started
        assert await backend.claim_resume("run-1", 60) is True
        assert await backend.claim_resume("run-1", 60) is False

    run_async(scenario())


@pytest.mark.parametrize("answer", ["error", "reply"])
def test_close_stops_a_lease_guard_whose_backend_swallows_the_cancellation(
    run_async: Any, answer: str
) -> None:
    """redis-py may answer a command cancelled midway with a connection error, or with its
    reply: the lease guard stops all the same, where it used to go on for ever and
    `RunManager.close` waited on it (a test with a one-second retention hung for minutes on
    a loaded machine)."""

    class Leased(InMemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.renewals = 0
            self.renewing = asyncio.Event()

        async def renew_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
            self.renewals += 1
            if self.renewals != 2:
                return True  # the one start_run makes, and any after the cancelled one
            self.renewing.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if answer == "error":
                    raise BackendConnectionError("connection lost mid-command", "fake") from None
            return True

        async def orphaned_runs(self) -> list[str]:
            return []

    async def scenario() -> None:
        backend = Leased()
        runs = RunManager(EventBus(backend), check_interval=0.01)
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        await asyncio.wait_for(backend.renewing.wait(), 30)  # the guard is mid-renewal
        closing = asyncio.ensure_future(runs.close())
        done, _ = await asyncio.wait({closing}, timeout=30)
        assert closing in done, "close() is still waiting for a guard it cancelled"

    run_async(scenario())

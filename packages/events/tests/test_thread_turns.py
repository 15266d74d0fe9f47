"""A thread's turn, on every backend: one holder at a time, the line served in arrival
order, a holder or waiter that stops asking replaced once its lease runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dockrion_events import EventBackend, Run

Make = Callable[..., EventBackend]


def test_one_holder_at_a_time_and_the_line_in_arrival_order(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        take = backend.take_thread_turn
        assert await take("t", "a", 30, wait=True)
        assert await backend.thread_turn_holder("t") == "a"
        assert await take("t", "a", 30, wait=False)  # renewed
        for waiter in ("b", "c", "d"):
            assert not await take("t", waiter, 30, wait=True)
        assert not await take("t", "x", 30, wait=False)  # reject: busy, not in line
        # another thread is free
        assert await take("u", "x", 30, wait=False)
        await backend.end_thread_turn("t", "a")
        # the first in line gets it, not a later one nor a newcomer
        assert not await take("t", "c", 30, wait=True)
        assert not await take("t", "newcomer", 30, wait=False)
        assert await take("t", "b", 30, wait=True)
        await backend.end_thread_turn("t", "c")  # c gives up its place
        await backend.end_thread_turn("t", "b")
        assert await take("t", "d", 30, wait=True)
        await backend.end_thread_turn("t", "d")
        assert await backend.thread_turn_holder("t") is None
        assert await take("t", "x", 30, wait=False)

    run_async(scenario())


def test_a_holder_or_waiter_that_stops_asking_is_replaced(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        take = backend.take_thread_turn
        assert await take("t", "gone", 0.2, wait=True)
        assert not await take("t", "silent", 0.2, wait=True)
        await asyncio.sleep(0.6)  # both leases ran out: nobody renewed
        assert await backend.thread_turn_holder("t") is None
        assert await take("t", "next", 30, wait=False)

    run_async(scenario())


def test_a_released_thread_can_be_claimed_by_anyone(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        backend = make_backend()
        assert await backend.thread_owner("t") is None
        assert await backend.claim_thread("t", "ana", 60) == "ana"
        assert await backend.thread_owner("t") == "ana"
        await backend.release_thread("t", "bob")  # not bob's: nothing happens
        assert await backend.claim_thread("t", "bob", 60) == "ana"
        await backend.release_thread("t", "ana")
        assert await backend.thread_owner("t") is None
        assert await backend.claim_thread("t", "bob", 60) == "bob"

    run_async(scenario())


def test_a_thread_record_keeps_its_newest_runs_in_order_and_pages_by_cursor(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        record = backend.record_thread_run
        # two runs created in the same microsecond are told apart by their ids
        for created, run_id in [(10, "a"), (20, "b"), (20, "c"), (30, "d"), (40, "e")]:
            entry = {"run_id": run_id, "status": "ACCEPTED"}
            await record("t", run_id, entry, created_us=created, ttl_seconds=60, max_runs=4)
        await record(
            "t",
            "d",
            {"run_id": "d", "status": "COMPLETED"},
            created_us=30,
            ttl_seconds=60,
            max_runs=4,
        )  # rewritten in place
        entries = await backend.thread_run_entries("t", limit=10)
        assert [e["run_id"] for e in entries] == ["e", "d", "c", "b"]  # "a" left: max 4
        assert entries[1]["status"] == "COMPLETED"
        first = await backend.thread_run_entries("t", limit=2)
        assert [e["run_id"] for e in first] == ["e", "d"]
        # a run created meanwhile does not move the next page
        await record("t", "f", {"run_id": "f"}, created_us=50, ttl_seconds=60, max_runs=10)
        rest = await backend.thread_run_entries("t", limit=2, before=(30, "d"))
        assert [e["run_id"] for e in rest] == ["c", "b"]
        assert await backend.thread_run_entries("t", limit=2, before=(20, "c")) == [
            {"run_id": "b", "status": "ACCEPTED"}
        ]
        assert await backend.thread_run_entries("other", limit=5) == []
        await backend.delete_thread_record("t")
        assert await backend.thread_run_entries("t", limit=5) == []

    run_async(scenario())


def test_a_thread_record_expires_after_its_ttl_unless_it_has_none(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        await backend.record_thread_run(
            "short", "r", {"run_id": "r"}, created_us=1, ttl_seconds=0.2, max_runs=5
        )
        await backend.record_thread_run(
            "kept", "r", {"run_id": "r"}, created_us=1, ttl_seconds=None, max_runs=5
        )
        for _ in range(100):  # bounded: at most 5 s
            if not await backend.thread_run_entries("short", limit=5):
                break
            await asyncio.sleep(0.05)
        assert await backend.thread_run_entries("short", limit=5) == []
        assert await backend.thread_run_entries("kept", limit=5) == [{"run_id": "r"}]

    run_async(scenario())


def test_an_owners_runs_page_newest_first_and_a_new_run_moves_no_page(
    run_async: Any, make_backend: Make
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(5):
            owner = "ana" if i != 2 else "bob"
            created = start + timedelta(seconds=i // 2)  # two runs share each second
            await backend.create_run(Run(run_id=f"r{i}", owner=owner, created_at=created))
        page = await backend.owner_runs("ana", limit=2)
        assert [run.run_id for _, run in page] == ["r4", "r3"]
        await backend.create_run(Run(run_id="r9", owner="ana"))  # created meanwhile
        rest = await backend.owner_runs("ana", limit=2, before=(page[-1][0], "r3"))
        assert [run.run_id for _, run in rest] == ["r1", "r0"]
        assert await backend.owner_runs("ana", limit=2, before=(rest[-1][0], "r0")) == []
        assert [run.run_id for _, run in await backend.owner_runs("bob", limit=5)] == ["r2"]
        await backend.delete_run("r4")
        newest = await backend.owner_runs("ana", limit=2)
        assert [run.run_id for _, run in newest] == ["r9", "r3"]

    run_async(scenario())


def test_a_stop_request_reaches_the_holder_it_names(run_async: Any, make_backend: Make) -> None:
    async def scenario() -> None:
        backend = make_backend()
        assert await backend.thread_turn_stopping("t", "a") is None
        await backend.stop_thread_turn("t", "a", "a new run (interrupt)", 30)
        assert await backend.thread_turn_stopping("t", "a") == "a new run (interrupt)"
        assert await backend.thread_turn_stopping("t", "b") is None
        assert await backend.thread_turn_stopping("u", "a") is None

    run_async(scenario())

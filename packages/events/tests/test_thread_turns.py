"""A thread's turn, on every backend: one holder at a time, the line served in arrival
order, a holder or waiter that stops asking replaced once its lease runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dockrion_events import EventBackend

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

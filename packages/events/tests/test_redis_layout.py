"""The Redis key layout: one hash tag per run, TTL on a finished run's keys, the prefix."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dockrion_events import EventBus, EventRecord, RunManager, RunNotFoundError
from dockrion_events.backends.redis_layout import text


def test_keys_share_a_hash_tag_and_expire_after_the_run(run_async: Any, redis_server: Any) -> None:
    from dockrion_events.backends.redis import RedisBackend

    async def scenario() -> tuple[list[str], dict[str, int]]:
        backend = RedisBackend(redis_server.url, stream_ttl_seconds=120, key_prefix="layout")
        runs = RunManager(EventBus(backend))
        try:
            run = await runs.create_run("order-7")
            await runs.start_run(run.run_id)
            context = runs.get_context(run.run_id)
            assert context is not None
            await context.emit_token("x")
            client = backend._client
            running_ttl = await client.ttl("layout:{order-7}:state")
            await runs.set_result(run.run_id, {"ok": True})
            keys = sorted(k.decode() for k in await client.keys("layout:*"))
            ttls = {key: await client.ttl(key) for key in keys}
            ttls["while running"] = running_ttl
            return keys, ttls
        finally:
            await runs.close()
            await backend.close()

    keys, ttls = run_async(scenario())
    assert keys == [
        "layout:owner:{}:runs",  # the owner's listing (a run without an owner: "")
        "layout:runs",
        "layout:{order-7}:log",
        "layout:{order-7}:state",
    ]
    # a live run's keys expire too, a retention after its last sign of life
    assert 0 < ttls["while running"] <= 120
    assert 0 < ttls["layout:{order-7}:state"] <= 120
    assert 0 < ttls["layout:{order-7}:log"] <= 120
    # the lease is gone with the run; the index expires a little after its newest entry
    assert 120 < ttls["layout:runs"] <= 120 + 30 + 1
    assert 120 < ttls["layout:owner:{}:runs"] <= 120 + 30 + 1


def test_every_key_and_index_entry_is_gone_after_the_retention(
    run_async: Any, redis_server: Any
) -> None:
    """Bounded memory: runs that ended, runs left ACCEPTED and runs whose instance vanished
    mid-run all leave nothing behind once their retention has passed, the shared index and
    running set included; under continued traffic the index drops the old entries.

    With a one-second retention, a loaded machine may let a run expire between two of its
    steps: that run is gone early, which is what is tested, not a failure. Every wait is
    for the state asked for, bounded; nothing assumes how fast the machine is."""
    from dockrion_events.backends.redis import RedisBackend

    async def expired_so_far(client: Any) -> int:
        return int((await client.info("stats"))["expired_keys"])

    async def scenario() -> None:
        backend = RedisBackend(redis_server.url, stream_ttl_seconds=1, key_prefix="bounded")
        runs = RunManager(EventBus(backend), lease_seconds=2)
        client = backend._client
        expired_before = await expired_so_far(client)
        try:

            async def one(index: int) -> None:
                run = await runs.create_run(f"r{index}")
                if index % 10 == 0:
                    return  # never started
                await runs.start_run(run.run_id)
                context = runs.get_context(run.run_id)
                assert context is not None
                await context.emit_token("x")
                if index % 10 == 1:
                    await context.emit_progress("vanished", 0.5)  # left RUNNING
                    runs.forget(run.run_id)
                    return
                await runs.set_result(run.run_id, {"i": index})

            # every run to its end before going on: no task is left behind on a failure
            outcomes = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
            failures = [
                outcome
                for outcome in outcomes
                if isinstance(outcome, BaseException) and not isinstance(outcome, RunNotFoundError)
            ]
            assert not failures, failures[:3]
            await runs.close()  # the lease guards stop: the RUNNING runs' instance is gone
            deadline = time.monotonic() + 60
            while await client.keys("bounded:*"):
                assert time.monotonic() < deadline, await client.keys("bounded:*")
                await asyncio.sleep(0.2)
            # the runs wrote their keys and Redis expired them (at least each run's state)
            assert await expired_so_far(client) - expired_before >= 200

            # Continued traffic: the entry of a run whose retention passed is trimmed.
            old = await runs.create_run("old")
            newest, members = old, {old.run_id}
            deadline = time.monotonic() + 60
            while old.run_id in members:
                assert time.monotonic() < deadline, "the old run stayed in the index"
                await asyncio.sleep(0.2)
                newest = await runs.create_run()
                members = {text(m) for m in await client.zrange("bounded:runs", 0, -1)}
            assert newest.run_id in members  # only entries past the retention go
        finally:
            await runs.close()
            await backend.close()

    run_async(scenario())


def test_key_names_and_entry_decoding_without_a_server() -> None:
    from dockrion_events.backends.redis_layout import Keys, decode_entries, sequence_of

    keys = Keys("p")
    assert [keys.state("r"), keys.log("r"), keys.lease("r")] == [
        "p:{r}:state",
        "p:{r}:log",
        "p:{r}:lease",
    ]
    assert (keys.runs, keys.running) == ("p:runs", "p:running")
    assert keys.resumed("r") == "p:{r}:resumed"
    assert keys.thread("t") == "p:thread:{t}"
    assert keys.rate_limit("ab12") == "p:ratelimit:ab12"
    assert sequence_of(b"12-1") == 12
    [record] = decode_entries([(b"3-1", {b"t": b"token", b"d": b'{"sequence":3}'})])
    assert (record.sequence, record.type, record.data) == (3, "token", '{"sequence":3}')
    # the frame made from Redis's bytes is the one made from the text
    data = '{"content":"héllo ✓"}'
    [record] = decode_entries([(b"7-1", {b"t": b"token", b"d": data.encode()})])
    assert record.data == data
    assert record.frame == EventRecord(7, "token", data).frame


def test_a_batch_sent_again_after_a_lost_reply_is_stored_once(
    run_async: Any, redis_server: Any
) -> None:
    """A producer whose append ran but whose reply was lost (the connection cut, a failover)
    sends the batch again: it is recognised as stored, not refused as a gap; a different
    batch at those sequences still is."""
    from dockrion_events import EventRecord
    from dockrion_events.backends.redis import RedisBackend
    from dockrion_events.errors import BackendPublishError
    from dockrion_events.models import TokenEvent

    async def scenario() -> list[str]:
        backend = RedisBackend(redis_server.url, key_prefix=f"again-{time.time_ns()}")
        runs = RunManager(EventBus(backend))
        try:
            run = await runs.create_run()
            await runs.start_run(run.run_id)  # event 0: started
            await runs.get_context(run.run_id).flush()  # type: ignore[union-attr]

            def batch(*words: str) -> list[EventRecord]:
                return [
                    EventRecord.from_event(TokenEvent(run_id=run.run_id, sequence=1 + i, content=w))
                    for i, w in enumerate(words)
                ]

            sent = batch("a", "b")
            await backend.append(run.run_id, sent)
            await backend.append(run.run_id, sent)  # again: already there
            try:
                await backend.append(run.run_id, batch("x", "y"))
            except BackendPublishError as exc:
                refused = str(exc)
            else:
                refused = ""
            assert "expected event 3, got 1" in refused
            records, _ = await backend.read(run.run_id, -1, timeout=0)
            return [record.type for record in records] + [
                record.event().model_dump()["content"] for record in records[1:]
            ]
        finally:
            await runs.close()
            await backend.close()

    assert run_async(scenario()) == ["started", "token", "token", "a", "b"]

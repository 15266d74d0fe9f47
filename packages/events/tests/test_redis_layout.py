"""The Redis key layout: one hash tag per run, TTL on a finished run's keys, the prefix."""

from __future__ import annotations

from typing import Any

from dockrion_events import EventBus, RunManager


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
    assert keys == ["layout:runs", "layout:{order-7}:log", "layout:{order-7}:state"]
    assert ttls["while running"] == -1  # no expiry while the run is alive
    assert 0 < ttls["layout:{order-7}:state"] <= 120
    assert 0 < ttls["layout:{order-7}:log"] <= 120
    # the lease is gone with the run; the shared index is pruned lazily when listing
    assert ttls["layout:runs"] == -1


def test_key_names_and_entry_decoding_without_a_server() -> None:
    from dockrion_events.backends.redis_layout import Keys, decode_entries, sequence_of

    keys = Keys("p")
    assert [keys.state("r"), keys.log("r"), keys.lease("r")] == [
        "p:{r}:state",
        "p:{r}:log",
        "p:{r}:lease",
    ]
    assert (keys.runs, keys.running) == ("p:runs", "p:running")
    assert sequence_of(b"12-1") == 12
    [record] = decode_entries([(b"3-1", {b"t": b"token", b"d": b'{"sequence":3}'})])
    assert (record.sequence, record.type, record.data) == (3, "token", '{"sequence":3}')

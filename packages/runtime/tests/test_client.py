"""dockrion_events.client against a live server: every event exactly once through a proxy
that cuts the connection at random points, refusals with status and code, sync and async."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import harness
import pytest

from dockrion_events.client import AsyncClient, Client, ConnectionLostError, ServerError

Serve = Callable[..., str]

MODULE = """
import time

def many(payload, context):
    for i in range(int(payload["count"])):
        context.sync_emit_token(f"token-{i} " + "x" * 40)
        time.sleep(0.002)
    return {"done": payload["count"]}
"""


@contextmanager
def cutting_proxy(target: str, cuts: int, seed: int = 7) -> Iterator[tuple[str, list[int]]]:
    """A loopback TCP proxy to `target` that closes each of the first `cuts` connections
    after a random number of response bytes (mid-frame, mid-header: anywhere)."""
    host, port = target.removeprefix("http://").split(":")
    rng = random.Random(seed)
    done: list[int] = []
    loop = asyncio.new_event_loop()

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None
    ) -> None:
        sent = 0
        try:
            while chunk := await reader.read(65536):
                if limit is not None and sent + len(chunk) >= limit:
                    writer.write(chunk[: limit - sent])
                    await writer.drain()
                    break
                sent += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        limit = None
        if len(done) < cuts:
            limit = rng.randint(1, 1500)
            done.append(limit)
        upstream_r, upstream_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_r, upstream_w, None), pipe(upstream_r, client_w, limit))

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = loop.run_until_complete(asyncio.start_server(handle, sock=sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", done
    finally:

        async def shutdown() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_events_survive_50_random_cuts_exactly_once(serve: Serve) -> None:
    url = serve("many", module=MODULE)
    with Client(url) as direct:
        run = direct.create_run({"query": "q", "count": 400})
    with (
        cutting_proxy(url, cuts=50) as (proxied, cuts),
        Client(proxied, give_up_after=60, max_reconnect_delay=0.02) as client,
    ):
        events = list(client.events(run.run_id))
    assert len(cuts) == 50
    assert [e.sequence for e in events] == list(range(len(events)))
    assert events[0].type == "started" and events[-1].type == "complete"
    assert sum(e.type == "token" for e in events) == 400


def test_async_client_survives_cuts_and_resumes_from_a_sequence(serve: Serve) -> None:
    url = serve("many", module=MODULE)

    async def scenario(proxied: str) -> list[int]:
        async with AsyncClient(url) as direct:
            run = await direct.create_run({"query": "q", "count": 100})
        async with AsyncClient(proxied, max_reconnect_delay=0.02) as client:
            return [e.sequence async for e in client.events(run.run_id, from_sequence=5)]

    with cutting_proxy(url, cuts=10) as (proxied, _):
        sequences = asyncio.run(scenario(proxied))
    assert sequences == list(range(5, 5 + len(sequences)))
    assert len(sequences) == 102 - 5  # started + 100 tokens + complete, from 5


def test_refusals_carry_status_and_code(serve: Serve) -> None:
    url = serve("echo", "auth:\n  api_keys: {env_var: CLIENT_KEY}\n", environ={"CLIENT_KEY": "k1"})
    with Client(url, api_key="wrong") as client, pytest.raises(ServerError) as refused:
        client.invoke({"query": "x"})
    assert (refused.value.status, refused.value.code) == (401, "AUTH_ERROR")
    with Client(url, api_key="k1") as client:
        assert client.invoke({"query": "hello"}) == {"answer": "hello"}
        with pytest.raises(ServerError) as invalid:
            client.invoke({"nope": 1})
        assert (invalid.value.status, invalid.value.code) == (400, "VALIDATION_ERROR")
        with pytest.raises(ServerError) as missing:
            list(client.events("no-such-run"))
        assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")
        events = list(client.stream({"query": "a b"}))
        assert events[0].type == "started" and events[-1].type == "complete"


def test_giving_up_is_a_clear_error(serve: Serve) -> None:
    port = harness.free_port()  # nothing listens there
    lost = Client(f"http://127.0.0.1:{port}", give_up_after=0.3, max_reconnect_delay=0.05)
    with lost, pytest.raises(ConnectionLostError, match="gave up resuming"):
        list(lost.events("some-run"))

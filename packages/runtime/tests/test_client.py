"""dockrion_events.client against a live server: every event exactly once through a proxy
that cuts the connection at random points, refusals with status and code, sync and async."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import harness
import pytest

from dockrion_events import BaseEvent, RunStatus
from dockrion_events.client import AsyncClient, Client, ConnectionLostError, ServerError
from dockrion_events.client._core import ResumeState
from dockrion_events.models import CancelledEvent, CompleteEvent, StartedEvent, TokenEvent

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


def follow(url: str, run_id: str, *, use_async: bool, **options: Any) -> list[BaseEvent]:
    """Every event `Client.events` (or `AsyncClient.events`) yields for the run."""
    if not use_async:
        with Client(url, **options) as client:
            return list(client.events(run_id))

    async def scenario() -> list[BaseEvent]:
        async with AsyncClient(url, **options) as client:
            return [event async for event in client.events(run_id)]

    return asyncio.run(scenario())


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_events_survive_50_random_cuts_exactly_once(serve: Serve, use_async: bool) -> None:
    url = serve("many", module=MODULE)
    with Client(url) as direct:
        run = direct.create_run({"query": "q", "count": 400})
    with cutting_proxy(url, cuts=50) as (proxied, cuts):
        events = follow(
            proxied, run.run_id, use_async=use_async, give_up_after=60, max_reconnect_delay=0.02
        )
    assert len(cuts) == 50
    assert [e.sequence for e in events] == list(range(len(events)))
    assert isinstance(events[0], StartedEvent) and isinstance(events[-1], CompleteEvent)
    assert sum(isinstance(e, TokenEvent) for e in events) == 400
    assert events[-1].output == {"done": 400}


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
    # the readable reason, not the finer machine cause
    assert refused.value.message == "Invalid API key"
    assert str(refused.value) == "401 AUTH_ERROR: Invalid API key"
    assert refused.value.details == {"reason": "INVALID_CREDENTIALS"}
    with Client(url, api_key="k1") as client:
        assert client.invoke({"query": "hello"}) == {"answer": "hello"}
        with pytest.raises(ServerError) as invalid:
            client.invoke({"nope": 1})
        assert (invalid.value.status, invalid.value.code) == (400, "VALIDATION_ERROR")
        # which field failed reaches the caller
        assert any("query" in str(d["loc"]) for d in invalid.value.details)
        with pytest.raises(ServerError) as missing:
            list(client.events("no-such-run"))
        assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")
        events = list(client.stream({"query": "a b"}))
        assert isinstance(events[0], StartedEvent) and isinstance(events[-1], CompleteEvent)


def test_async_refusals_carry_status_and_code(serve: Serve) -> None:
    url = serve("echo", "auth:\n  api_keys: {env_var: CLIENT_KEY}\n", environ={"CLIENT_KEY": "k1"})

    async def scenario() -> list[tuple[int, str]]:
        refusals: list[tuple[int, str]] = []
        async with AsyncClient(url, api_key="wrong") as client:
            with pytest.raises(ServerError) as refused:
                await client.invoke({"query": "x"})
            refusals.append((refused.value.status, refused.value.code))
            with pytest.raises(ServerError) as refused:
                [event async for event in client.stream({"query": "x"})]
            refusals.append((refused.value.status, refused.value.code))
        async with AsyncClient(url, api_key="k1") as client:
            assert await client.invoke({"query": "hello"}) == {"answer": "hello"}
            with pytest.raises(ServerError) as refused:
                await client.create_run({"nope": 1})
            refusals.append((refused.value.status, refused.value.code))
            with pytest.raises(ServerError) as refused:
                [event async for event in client.events("no-such-run")]
            refusals.append((refused.value.status, refused.value.code))
            events = [event async for event in client.stream({"query": "a b"})]
            assert isinstance(events[0], StartedEvent) and isinstance(events[-1], CompleteEvent)
        return refusals

    assert asyncio.run(scenario()) == [
        (401, "AUTH_ERROR"),
        (401, "AUTH_ERROR"),
        (400, "VALIDATION_ERROR"),
        (404, "NOT_FOUND"),
    ]


KEYED = "auth:\n  api_keys: {env_var: CLIENT_KEY}\n"


def test_cancel_and_get_run_with_a_bearer_token(serve: Serve) -> None:
    url = serve("endless", KEYED, environ={"CLIENT_KEY": "k1"})
    with Client(url, token="k1") as client:  # the key sent as `Authorization: Bearer`
        run = client.create_run({"query": "q"})
        assert client.get_run(run.run_id).status in (RunStatus.ACCEPTED, RunStatus.RUNNING)
        seen: list[BaseEvent] = []
        for event in client.events(run.run_id):
            seen.append(event)
            if len(seen) == 5:
                assert client.cancel(run.run_id, reason="enough") == "CANCELLED"
        assert isinstance(seen[-1], CancelledEvent) and seen[-1].reason == "enough"
        assert client.get_run(run.run_id).status is RunStatus.CANCELLED
        with pytest.raises(ServerError) as finished:
            client.cancel(run.run_id)
        assert (finished.value.status, finished.value.code) == (409, "CONFLICT")
    with Client(url, token="wrong") as client, pytest.raises(ServerError) as refused:
        client.get_run(run.run_id)
    assert refused.value.status == 401


def test_async_cancel_and_get_run_with_a_bearer_token(serve: Serve) -> None:
    url = serve("endless", KEYED, environ={"CLIENT_KEY": "k1"})

    async def scenario() -> tuple[list[BaseEvent], RunStatus]:
        async with AsyncClient(url, token="k1") as client:
            run = await client.create_run({"query": "q"})
            seen: list[BaseEvent] = []
            async for event in client.events(run.run_id):
                seen.append(event)
                if len(seen) == 5:
                    assert await client.cancel(run.run_id) == "CANCELLED"
            return seen, (await client.get_run(run.run_id)).status

    seen, status = asyncio.run(scenario())
    assert isinstance(seen[0], StartedEvent) and isinstance(seen[-1], CancelledEvent)
    assert [e.sequence for e in seen] == list(range(len(seen)))
    assert status is RunStatus.CANCELLED


def test_giving_up_is_a_clear_error(serve: Serve) -> None:
    port = harness.free_port()  # nothing listens there
    lost = Client(f"http://127.0.0.1:{port}", give_up_after=0.3, max_reconnect_delay=0.05)
    with lost, pytest.raises(ConnectionLostError, match="gave up resuming"):
        list(lost.events("some-run"))


@contextmanager
def hinting_server(retry_ms: int) -> Iterator[tuple[str, list[str | None]]]:
    """An SSE endpoint that sends `retry: <retry_ms>` and the run's first event, then
    closes every later connection with nothing new: the runtime always hints 3000 ms, so
    another hint needs another server. Yields its URL and each request's Last-Event-ID."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes

        def do_GET(self) -> None:
            seen.append(self.headers.get("Last-Event-ID"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            body = f"retry: {retry_ms}\n\n"
            if len(seen) == 1:
                started = '{"type": "started", "run_id": "r1", "sequence": 0}'
                body += f"id: 0\nevent: started\ndata: {started}\n\n"
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}", seen
    finally:
        site.shutdown()
        site.server_close()


def test_the_retry_hint_is_followed_and_failures_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `retry: 1` asks for a reconnect after 1 ms; each failure in a row doubles the wait
    # (with jitter: between half and all of it). The waits the client chose are recorded.
    waits: list[float] = []
    choose = ResumeState.next_delay

    def recorded(state: ResumeState, reason: str) -> float:
        waits.append(choose(state, reason))
        return waits[-1]

    monkeypatch.setattr(ResumeState, "next_delay", recorded)
    with hinting_server(retry_ms=1) as (url, seen):
        client = Client(url, give_up_after=3)
        with client, pytest.raises(ConnectionLostError, match="last sequence 0"):
            events = []
            for event in client.events("r1"):
                events.append(event)
    assert [type(e) for e in events] == [StartedEvent]
    assert seen[0] is None and set(seen[1:]) == {"0"}
    assert len(waits) >= 4  # 1 + 2 + 4 + 8 ms of waiting fit in 3 s
    for failures, wait in enumerate(waits[:-1]):  # the last may be cut short by the deadline
        assert 0.001 * 2**failures / 2 <= wait <= 0.001 * 2**failures, waits

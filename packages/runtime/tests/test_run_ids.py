"""Run and thread ids over real HTTP: checked whole (a trailing newline is not part of a
valid id), a client-chosen id is the run's id whoever calls, an id in use is 409 whoever
holds it, nobody reaches another caller's run through an id; a subscription that fails
gives back its place; cancelling a finished run is a conflict, not a bad request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from dockrion_events import EventRecord, parse_sse
from dockrion_runtime.runtime import SubscriberLimit
from dockrion_runtime.wire.sse import EventStreamResponse

Serve = Callable[..., str]

KEYS = {"K_API_KEY_ALICE": "alice-secret-key-1", "K_API_KEY_BOB": "bob-secret-key-22"}
ALICE = {"X-API-Key": "alice-secret-key-1"}
BOB = {"X-API-Key": "bob-secret-key-22"}
AUTH = "auth:\n  api_keys: {prefix: K_}\n"


def test_ids_with_a_trailing_newline_are_refused(serve: Serve) -> None:
    url = serve("echo")
    created = httpx.post(f"{url}/runs", params={"run_id": "order-42\n"}, json={"query": "x"})
    assert (created.status_code, created.json()["code"]) == (400, "VALIDATION_ERROR")
    for path in ("/runs/order-42%0A", "/runs/order-42%0A/events"):
        answer = httpx.get(f"{url}{path}")
        assert (answer.status_code, answer.json()["code"]) == (400, "VALIDATION_ERROR")
    threaded = httpx.post(f"{url}/invoke", params={"thread_id": "t-1\n"}, json={"query": "x"})
    assert threaded.status_code == 400
    assert threaded.json()["error"].startswith("Invalid thread id")


def test_ag_ui_replays_of_a_bad_id_never_use_up_subscriber_places(serve: Serve) -> None:
    """A replay that failed inside the HTTP layer (an id with a newline went into a
    header) kept its subscriber place: after five tries the run answered 429."""
    url = serve(
        "echo",
        "expose:\n  host: 127.0.0.1\n  ag_ui: {enabled: true, message_field: query}\n"
        "streaming:\n  connection: {max_subscribers_per_run: 5}\n",
    )
    created = httpx.post(f"{url}/runs", params={"run_id": "leak\n"}, json={"query": "x"})
    assert created.status_code == 400
    for _ in range(6):
        replay = httpx.get(f"{url}/ag-ui/runs/leak%0A", timeout=30)
        assert (replay.status_code, replay.json()["code"]) == (400, "VALIDATION_ERROR")
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    for _ in range(6):  # each replay reads the finished run to its end and leaves
        with httpx.stream("GET", f"{url}/ag-ui/runs/{run_id}", timeout=30) as replay:
            assert replay.status_code == 200
            replay.read()


async def _no_batches() -> AsyncIterator[list[EventRecord]]:
    await asyncio.sleep(3600)
    yield []


def test_a_stream_that_fails_to_start_gives_back_its_subscriber_place() -> None:
    """However the HTTP layer fails a stream (here: its head cannot be sent), the
    subscriber's place is given back and its subscription closed."""
    limit = SubscriberLimit(1)
    batches = _no_batches()
    response = EventStreamResponse(
        batches, run_id="r1", heartbeat_events=False, on_close=limit.acquire("r1")
    )

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        raise RuntimeError("Invalid HTTP header value.")

    with pytest.raises(RuntimeError):
        asyncio.run(response({"type": "http"}, receive, send))
    limit.acquire("r1")()  # the place is free again
    assert batches.ag_running is False and batches.ag_frame is None  # closed


def test_cancelling_a_finished_run_is_a_409_conflict(serve: Serve) -> None:
    url = serve("echo")
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=30) as events:
        events.read()
    answer = httpx.delete(f"{url}/runs/{run_id}")
    assert answer.status_code == 409
    assert answer.json() == {
        "success": False,
        "error": f"Run '{run_id}' already finished (COMPLETED); nothing to cancel",
        "code": "CONFLICT",
        "details": None,
    }


def test_a_client_chosen_run_id_is_the_run_id_whoever_calls(serve: Serve) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    created = httpx.post(
        f"{url}/runs", params={"run_id": "order-42"}, json={"query": "x"}, headers=ALICE
    )
    assert created.status_code == 202
    assert created.json()["run_id"] == "order-42"
    assert created.json()["events_url"] == "/runs/order-42/events"
    with httpx.stream("GET", f"{url}/runs/order-42/events", headers=ALICE, timeout=30) as stream:
        messages = list(parse_sse(stream.read()))
    assert {json.loads(m.data)["run_id"] for m in messages} == {"order-42"}
    assert httpx.get(f"{url}/runs/order-42", headers=ALICE).json()["run_id"] == "order-42"
    longest = "a" * 128
    answer = httpx.post(
        f"{url}/runs", params={"run_id": longest}, json={"query": "x"}, headers=ALICE
    )
    assert (answer.status_code, answer.json()["run_id"]) == (202, longest)


def test_an_id_in_use_is_409_whoever_holds_it_and_reveals_nothing(serve: Serve) -> None:
    url = serve("echo", AUTH, environ=KEYS)
    params = {"run_id": "order-42"}
    taken = httpx.post(f"{url}/runs", params=params, json={"query": "x"}, headers=ALICE)
    assert taken.status_code == 202
    again = httpx.post(f"{url}/runs", params=params, json={"query": "x"}, headers=ALICE)
    probe = httpx.post(f"{url}/runs", params=params, json={"query": "x"}, headers=BOB)
    assert again.status_code == probe.status_code == 409
    assert (
        again.json()
        == probe.json()
        == {
            "success": False,
            "error": "Run id 'order-42' is already in use; choose another (a UUID, for example)",
            "code": "CONFLICT",
            "details": None,
        }
    )
    # the id names Alice's run, which stays hers
    for method, path in [
        ("GET", "/runs/order-42"),
        ("GET", "/runs/order-42/events"),
        ("DELETE", "/runs/order-42"),
        ("POST", "/runs/order-42/resume"),
    ]:
        answer = httpx.request(method, f"{url}{path}", headers=BOB, json={"x": 1})
        assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND"), path
    assert httpx.get(f"{url}/runs/order-42", headers=ALICE).status_code == 200

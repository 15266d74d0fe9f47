"""Pattern B: background runs that clients watch, leave and rejoin, over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dockrion_events import SseMessage, SseParser, parse_sse

from .conftest import agent_module

Serve = Callable[..., str]


def events_of(url: str, run_id: str, **kwargs: Any) -> list[SseMessage]:
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60, **kwargs) as response:
        assert response.status_code == 200, response.read()
        return list(parse_sse(b"".join(response.iter_bytes())))


def wait_done(url: str, run_id: str) -> dict[str, Any]:
    messages = events_of(url, run_id)  # the stream closes after the terminal event
    assert messages[-1].event in ("complete", "error", "cancelled")
    return httpx.get(f"{url}/runs/{run_id}").json()


def test_create_follow_and_read_a_run(serve: Serve) -> None:
    url = serve("echo")
    created = httpx.post(f"{url}/runs", json={"query": "a b c"})
    assert created.status_code == 202
    body = created.json()
    assert set(body) == {"run_id", "status", "events_url", "created_at"}
    assert body["status"] == "ACCEPTED"
    assert body["events_url"] == f"/runs/{body['run_id']}/events"
    messages = events_of(url, body["run_id"])
    assert [m.id for m in messages] == [str(i) for i in range(len(messages))]
    assert messages[0].event == "started" and messages[-1].event == "complete"
    assert messages[-1].json()["output"] == {"answer": "a b c"}
    status = httpx.get(f"{url}/runs/{body['run_id']}").json()
    assert status["status"] == "COMPLETED"
    assert status["output"] == {"answer": "a b c"}
    assert status["error"] is None and status["completed_at"]


def test_late_subscriber_gets_the_whole_log_and_a_closed_stream(serve: Serve) -> None:
    url = serve("echo")
    run_id = httpx.post(f"{url}/runs", json={"query": "x y"}).json()["run_id"]
    wait_done(url, run_id)
    again = events_of(url, run_id)
    assert [m.id for m in again] == [str(i) for i in range(len(again))]
    assert again[-1].event == "complete"


def test_resume_by_header_and_by_query(serve: Serve) -> None:
    url = serve("echo")
    run_id = httpx.post(f"{url}/runs", json={"query": "a b c d"}).json()["run_id"]
    whole = events_of(url, run_id)
    by_header = events_of(url, run_id, headers={"Last-Event-ID": "2"})
    assert [m.id for m in by_header] == [m.id for m in whole[3:]]
    by_query = events_of(url, run_id, params={"from_sequence": 2})
    assert [m.id for m in by_query] == [m.id for m in whole[2:]]
    both = events_of(url, run_id, params={"from_sequence": 0}, headers={"Last-Event-ID": "5"})
    assert [m.id for m in both] == [m.id for m in whole[6:]]
    past_end = events_of(url, run_id, headers={"Last-Event-ID": whole[-1].id or ""})
    assert past_end == []


def test_client_ids_duplicates_and_bad_ids(serve: Serve) -> None:
    url = serve("echo")
    first = httpx.post(f"{url}/runs", params={"run_id": "order-42"}, json={"query": "x"})
    assert (first.status_code, first.json()["run_id"]) == (202, "order-42")
    duplicate = httpx.post(f"{url}/runs", params={"run_id": "order-42"}, json={"query": "x"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "success": False,
        "error": "Run id 'order-42' is already in use; choose another (a UUID, for example)",
        "code": "CONFLICT",
        "details": None,
    }
    bad = httpx.post(f"{url}/runs", params={"run_id": "_hidden"}, json={"query": "x"})
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_ERROR")
    invalid_body = httpx.post(f"{url}/runs", params={"run_id": "never"}, json={"nope": 1})
    assert invalid_body.status_code == 400
    assert httpx.get(f"{url}/runs/never").status_code == 404  # a rejected request creates nothing


def test_client_ids_can_be_turned_off_and_ids_generated_by_a_handler(
    serve: Serve, tmp_path: Path
) -> None:
    name = f"agent_{tmp_path.name.replace('-', '_')}"
    url = serve(
        "echo",
        f'streaming:\n  allow_client_ids: false\n  id_generator: {{type: custom, handler: "{name}:next_id"}}\n',
    )
    refused = httpx.post(f"{url}/runs", params={"run_id": "mine"}, json={"query": "x"})
    assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR")
    assert httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"] == "job-0"
    assert httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"] == "job-1"


def test_unknown_runs_and_bad_queries(serve: Serve) -> None:
    url = serve("echo")
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{url}/runs/no-such-run")
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": "Run 'no-such-run' not found",
            "code": "NOT_FOUND",
            "details": None,
        }
    assert httpx.get(f"{url}/runs/no-such-run/events").status_code == 404
    assert httpx.get(f"{url}/runs/bad%20id").json()["code"] == "VALIDATION_ERROR"
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    for params in (
        {"from_sequence": -1},
        {"timeout": 0},
        {"timeout": 99999},
        {"from_sequence": "x"},
    ):
        response = httpx.get(f"{url}/runs/{run_id}/events", params=params)
        assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_ERROR"), params
    bad_header = httpx.get(f"{url}/runs/{run_id}/events", headers={"Last-Event-ID": "abc"})
    assert bad_header.status_code == 400


def test_delete_stops_the_agent_and_ends_the_log(serve: Serve, tmp_path: Path) -> None:
    url = serve("endless")
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        parser = SseParser()
        seen: list[SseMessage] = []
        for chunk in response.iter_bytes():
            seen += parser.feed(chunk)
            if sum(m.event == "token" for m in seen) >= 3:
                break
    deleted = httpx.delete(f"{url}/runs/{run_id}", params={"reason": "enough"})
    assert deleted.status_code == 200
    assert deleted.json() == {"run_id": run_id, "status": "CANCELLED"}
    assert module.stopped.wait(30), "DELETE did not stop the agent"
    messages = events_of(url, run_id)
    assert messages[-1].event == "cancelled" and messages[-1].json()["reason"] == "enough"
    assert [m.id for m in messages] == [str(i) for i in range(len(messages))]
    assert sum(m.event in ("complete", "error", "cancelled") for m in messages) == 1
    assert httpx.get(f"{url}/runs/{run_id}").json()["status"] == "CANCELLED"
    again = httpx.delete(f"{url}/runs/{run_id}")
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICT")


def test_subscription_timeout_closes_cleanly_and_resume_loses_nothing(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve("wait_for_release")
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    with httpx.stream(
        "GET", f"{url}/runs/{run_id}/events", params={"timeout": 1}, timeout=60
    ) as response:
        raw = b"".join(response.iter_bytes())
    assert raw.endswith(b": timeout\n\n")
    first = list(parse_sse(raw))
    assert [m.event for m in first] == ["started", "token"]
    module.release.set()
    rest = events_of(url, run_id, headers={"Last-Event-ID": first[-1].id or ""})
    assert [m.event for m in rest] == ["complete"]
    assert rest[0].id == "2"


def test_subscriber_limit(serve: Serve, tmp_path: Path) -> None:
    url = serve("wait_for_release", "streaming:\n  connection: {max_subscribers_per_run: 1}\n")
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as first:
        parser = SseParser()
        chunks = first.iter_bytes()
        while not any(m.event == "token" for m in parser.feed(next(chunks))):
            pass
        second = httpx.get(f"{url}/runs/{run_id}/events", timeout=60)
        assert second.status_code == 429
        assert second.json()["code"] == "TOO_MANY_SUBSCRIBERS"
        module.release.set()
        list(chunks)
    assert events_of(url, run_id)[-1].event == "complete"  # the slot was given back


def test_idle_streams_get_heartbeats_without_ids(serve: Serve, tmp_path: Path) -> None:
    url = serve("wait_for_release", "streaming:\n  events: {allowed: all, heartbeat_interval: 1}\n")
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        parser = SseParser()
        seen: list[SseMessage] = []
        for chunk in response.iter_bytes():
            seen += parser.feed(chunk)
            if any(m.event == "heartbeat" for m in seen):
                module.release.set()
    beats = [m for m in seen if m.event == "heartbeat"]
    assert beats and all(json.loads(b.data)["sequence"] == 1 for b in beats)
    stored = [m for m in seen if m.event != "heartbeat"]
    assert [m.id for m in stored] == ["0", "1", "2"]
    assert all(b.id in (None, "1") for b in beats)  # the parser keeps the last id; no new one


def test_keep_alive_comments_when_heartbeats_are_filtered(serve: Serve, tmp_path: Path) -> None:
    url = serve(
        "wait_for_release", "streaming:\n  events: {allowed: chat, heartbeat_interval: 1}\n"
    )
    module = agent_module(tmp_path)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
    raw = b""
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        for chunk in response.iter_bytes():
            raw += chunk
            if b": keep-alive" in raw:
                module.release.set()
    assert b": keep-alive\n\n" in raw
    assert b"event: heartbeat" not in raw


def test_max_run_duration_ends_the_run(serve: Serve, tmp_path: Path) -> None:
    url = serve("wait_for_release", "streaming:\n  events: {max_run_duration: 1}\n")
    module = agent_module(tmp_path)
    try:
        run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
        status = wait_done(url, run_id)
        assert status["status"] == "FAILED"
        assert status["error"]["code"] == "RUN_TIMEOUT"
    finally:
        module.release.set()


def test_many_clients_watch_one_run(serve: Serve) -> None:
    url = serve("echo")
    run_id = httpx.post(f"{url}/runs", json={"query": " ".join(["w"] * 50)}).json()["run_id"]
    results: list[list[str | None]] = []

    def watch() -> None:
        results.append([m.id for m in events_of(url, run_id)])

    threads = [threading.Thread(target=watch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 8
    assert all(ids == [str(i) for i in range(len(ids))] and len(ids) == 152 for ids in results)

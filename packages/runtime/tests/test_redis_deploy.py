"""Runtime processes past one machine: `streaming.redis.cluster` on a real three-master
Redis Cluster; two instances behind nginx (docs/deploy/nginx.conf) with one killed
mid-stream, followed by httpx and by headless Chromium's EventSource, and WebSockets
upgraded through it;
`streaming.redis.sentinel` with the primary killed mid-run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from dockrion_events import SseMessage, SseParser, parse_sse

from .browser_page import CHROMIUM, run_page
from .conftest import launch, require_nginx, write_project


def test_three_instances_on_a_redis_cluster(
    tmp_path: Path, redis_cluster: Any, servers: list[subprocess.Popen[bytes]]
) -> None:
    """Created on A, streamed from B, cancelled from C, replayed from the middle on A."""
    dockfile = write_project(
        tmp_path,
        "endless_marker",
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_cluster.url}', cluster: true, lease_seconds: 2, "
        f"key_prefix: c{uuid.uuid4().hex[:8]}}}\n",
    )
    a, b, c = (launch(dockfile, servers) for _ in range(3))
    marker = tmp_path / "stopped"
    run_id = httpx.post(f"{a}/runs", json={"query": "x", "marker": str(marker)}).json()["run_id"]
    with httpx.stream("GET", f"{b}/runs/{run_id}/events", timeout=60) as response:
        chunks = response.iter_bytes()
        seen = b""
        while seen.count(b"event: token") < 3:
            seen += next(chunks)
        cancelled = httpx.delete(f"{c}/runs/{run_id}", params={"reason": "from C"})
        assert cancelled.json() == {"run_id": run_id, "status": "CANCELLED"}
        messages = list(parse_sse(seen + b"".join(chunks)))
    assert [m.id for m in messages] == [str(i) for i in range(len(messages))]
    assert messages[-1].event == "cancelled" and messages[-1].json()["reason"] == "from C"
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the agent on A never stopped"
        time.sleep(0.05)
    with httpx.stream(
        "GET", f"{a}/runs/{run_id}/events", params={"from_sequence": 2}, timeout=60
    ) as response:
        replay = list(parse_sse(b"".join(response.iter_bytes())))
    assert [(m.id, m.data) for m in replay] == [(m.id, m.data) for m in messages[2:]]


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """`nginx(a, b)`: docs/deploy/nginx.conf on a free loopback port in front of two
    instances, B as backup (so A serves every request until it dies: the stream is cut
    deterministically); returns nginx's URL."""
    require_nginx()
    started: list[harness.Nginx] = []

    def start(a: str, b: str) -> str:
        upstreams = [
            f"{a.removeprefix('http://')} max_fails=1 fail_timeout=5s",
            f"{b.removeprefix('http://')} backup",
        ]
        proxy = harness.Nginx(tmp_path / f"nginx-{len(started)}", upstreams)
        started.append(proxy)
        proxy.start()
        return proxy.url

    yield start
    for proxy in started:
        proxy.stop()


def test_through_nginx_a_killed_instance_loses_no_event(
    tmp_path: Path,
    redis_server: Any,
    servers: list[subprocess.Popen[bytes]],
    nginx: Callable[[str, str], str],
) -> None:
    """A run streamed through nginx; the instance running the agent and serving the stream
    is killed with SIGKILL; the client resumes through nginx (Last-Event-ID), now served by
    the other instance, and gets every event exactly once, then RUN_ORPHANED."""
    dockfile = write_project(
        tmp_path,
        "endless_marker",
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, "
        f"key_prefix: n{uuid.uuid4().hex[:8]}}}\n",
    )
    a, b = launch(dockfile, servers), launch(dockfile, servers)
    proxy = nginx(a, b)
    run_id = httpx.post(f"{proxy}/runs", json={"query": "x", "marker": str(tmp_path / "m")}).json()[
        "run_id"
    ]
    ids: list[int] = []
    last: SseMessage | None = None
    connections = 0
    killed_at = 0.0
    deadline = time.monotonic() + 60
    while (last is None or last.event not in ("complete", "error", "cancelled")) and (
        time.monotonic() < deadline
    ):
        connections += 1
        headers = {"Last-Event-ID": str(ids[-1])} if ids else {}
        try:
            with httpx.stream(
                "GET", f"{proxy}/runs/{run_id}/events", headers=headers, timeout=30
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                parser = SseParser()
                for chunk in response.iter_bytes():
                    for message in parser.feed(chunk):
                        if message.id is not None:
                            ids.append(int(message.id))
                            last = message
                    if connections == 1 and len(ids) >= 20:
                        servers[0].send_signal(signal.SIGKILL)  # A: agent and stream
                        servers[0].wait(30)
                        killed_at = time.monotonic()
        except httpx.HTTPError:
            pass  # the cut: resume
    print(f"death to RUN_ORPHANED: {time.monotonic() - killed_at:.1f} s, {connections} connections")
    assert connections >= 2, "the stream was never cut"
    assert ids == list(range(len(ids))), "an event was lost or repeated"
    assert last is not None and last.event == "error"
    assert last.json()["code"] == "RUN_ORPHANED"
    status = httpx.get(f"{proxy}/runs/{run_id}").json()
    assert status["status"] == "FAILED" and status["error"]["code"] == "RUN_ORPHANED"


BROWSER_PAGE = """<!doctype html><meta charset="utf-8"><title>through nginx</title>
<script>
const seen = [];
let opens = 0;
let told = false;
const source = new EventSource("EVENTS_URL");
source.onopen = () => { opens += 1; };
function record(e) {
  // A dropped connection fires a plain `error` Event (not a MessageEvent): not ours.
  if (!(e instanceof MessageEvent)) return;
  const code = e.type === "error" ? JSON.parse(e.data).code : null;
  seen.push({id: e.lastEventId, type: e.type, code});
  if (!told && seen.length >= 20) {
    told = true;  // the test kills the instance serving this stream now
    fetch("/progress", {method: "POST", body: JSON.stringify({seen: seen.length})});
  }
  if (["complete", "error", "cancelled"].includes(e.type)) {
    source.close();
    fetch("/report", {method: "POST", body: JSON.stringify({seen, opens})});
  }
}
for (const name of ["started", "token", "complete", "error", "cancelled"]) {
  source.addEventListener(name, record);
}
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_a_browser_through_nginx_follows_a_run_past_a_killed_instance(
    tmp_path: Path,
    redis_server: Any,
    servers: list[subprocess.Popen[bytes]],
    nginx: Callable[[str, str], str],
) -> None:
    """Headless Chromium's EventSource follows a long run through nginx; once it has 20
    events the instance serving its stream (and running the agent) is killed with SIGKILL;
    the browser reconnects by itself through nginx to the other instance and receives every
    event exactly once, then the terminal RUN_ORPHANED event."""
    dockfile = write_project(
        tmp_path,
        "endless_marker",
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', lease_seconds: 2, "
        f"key_prefix: b{uuid.uuid4().hex[:8]}}}\n",
    )
    a, b = launch(dockfile, servers), launch(dockfile, servers)
    proxy = nginx(a, b)
    created = httpx.post(f"{proxy}/runs", json={"query": "x", "marker": str(tmp_path / "m")})
    run_id = created.json()["run_id"]

    def kill_a(progress: dict[str, Any]) -> None:
        servers[0].send_signal(signal.SIGKILL)  # A: agent and stream
        servers[0].wait(30)

    page = BROWSER_PAGE.replace("EVENTS_URL", f"{proxy}/runs/{run_id}/events")
    report = run_page(page, tmp_path / "profile", on_progress=kill_a)
    assert servers[0].poll() is not None, "the instance was never killed"
    assert report["opens"] >= 2, "the stream was never cut and resumed"
    ids = [int(item["id"]) for item in report["seen"]]
    assert ids == list(range(len(ids))), "an event was lost or repeated"
    assert len(ids) > 20
    last = report["seen"][-1]
    assert (last["type"], last["code"]) == ("error", "RUN_ORPHANED")
    assert [item["type"] for item in report["seen"][:-1]] == ["started"] + ["token"] * (
        len(ids) - 2
    )


GATED = """
import json
import os
import time

def gated(payload, context):
    # 20 tokens, then 20 more once the test has killed the primary (no primary yet: they
    # wait in the buffer), then the end.
    for i in range(20):
        context.sync_emit_token(f"before {i}")
    deadline = time.monotonic() + 120
    while not os.path.exists(payload["gate"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(20):
        context.sync_emit_token(f"during {i}")
    return {"done": True}
"""


def test_a_sentinel_failover_mid_run_loses_no_event(
    tmp_path: Path,
    redis_sentinels: Any,
    servers: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`streaming.redis.sentinel`: two instances find the primary through three Sentinels
    (rate limits shared through it too); the primary is killed mid-run; the run completes,
    and a client following it from the other instance (resuming with Last-Event-ID when the
    stream is cut) reads a contiguous log with exactly one terminal event."""
    addresses = ", ".join(f"'{address}'" for address in redis_sentinels.addresses)
    dockfile = write_project(
        tmp_path,
        "gated",
        "auth:\n  rate_limits: {default: 1000/hour}\n"
        "streaming:\n  backend: redis\n  redis:\n"
        f"    key_prefix: s{uuid.uuid4().hex[:8]}\n"
        f"    sentinel: {{service_name: {redis_sentinels.SERVICE}, sentinels: [{addresses}], "
        f"password: '{redis_sentinels.password}'}}\n",
        module=GATED,
    )
    monkeypatch.setenv("DOCKRION_API_KEY", "sentinel-key")
    key = {"X-API-Key": "sentinel-key"}
    a, b = launch(dockfile, servers), launch(dockfile, servers)
    gate = tmp_path / "gate"
    created = httpx.post(f"{a}/runs", json={"query": "x", "gate": str(gate)}, headers=key)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    messages: list[SseMessage] = []
    connections = 0
    deadline = time.monotonic() + 120
    while not (messages and messages[-1].event in ("complete", "error", "cancelled")):
        assert time.monotonic() < deadline, f"no end after {len(messages)} events"
        connections += 1
        resume = {"Last-Event-ID": messages[-1].id or ""} if messages else {}
        try:
            with httpx.stream(
                "GET", f"{b}/runs/{run_id}/events", headers=key | resume, timeout=30
            ) as response:
                if response.status_code != 200:  # 503 while there is no primary
                    time.sleep(0.2)
                    continue
                parser = SseParser()
                for chunk in response.iter_bytes():
                    messages += [m for m in parser.feed(chunk) if m.id is not None]
                    if not gate.exists() and len(messages) >= 21:  # started, 20 tokens
                        redis_sentinels.synced()  # see the events test: nothing in flight
                        old = redis_sentinels.kill_primary()
                        gate.touch()
                        assert redis_sentinels.wait_for_failover(old) != old
        except httpx.HTTPError:
            time.sleep(0.2)
    assert [m.id for m in messages] == [str(i) for i in range(42)], "lost or repeated"
    assert [m.event for m in messages].count("complete") == 1
    assert messages[-1].event == "complete"
    tokens = [f"{phase} {i}" for phase in ("before", "during") for i in range(20)]
    assert [m.json()["content"] for m in messages[1:41]] == tokens
    # Rate limits count in the new primary too, shared by both instances.
    left = [
        int(httpx.get(f"{url}/runs/{run_id}", headers=key).headers["ratelimit-remaining"])
        for url in (a, b)
    ]
    assert left[1] == left[0] - 1, left


def test_websockets_through_nginx(
    tmp_path: Path,
    redis_server: Any,
    servers: list[subprocess.Popen[bytes]],
    nginx: Callable[[str, str], str],
) -> None:
    """The documented nginx configuration upgrades WebSockets: Pattern A streams an answer
    and closes 1000; Pattern B replays a run created through the proxy, the same events
    as its SSE replay."""
    from websockets.sync.client import connect

    from .test_websocket import read_all, ws_url

    dockfile = write_project(
        tmp_path,
        "echo",
        "expose: {host: 127.0.0.1, streaming: [sse, websocket]}\n"
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', key_prefix: w{uuid.uuid4().hex[:8]}}}\n",
    )
    proxy = nginx(launch(dockfile, servers), launch(dockfile, servers))

    with connect(ws_url(proxy, "/invoke/ws")) as socket:
        socket.send('{"query": "through the proxy"}')
        messages, code, _ = read_all(socket)
    assert code == 1000
    assert [m["content"] for m in messages if m["type"] == "token"] == ["through", "the", "proxy"]
    assert messages[-1]["type"] == "complete"

    run_id = httpx.post(f"{proxy}/runs", json={"query": "one run two views"}).json()["run_id"]
    with httpx.stream("GET", f"{proxy}/runs/{run_id}/events", timeout=60) as response:
        over_sse = [m.data for m in parse_sse(b"".join(response.iter_bytes()))]
    with connect(ws_url(proxy, f"/runs/{run_id}/ws")) as socket:
        replayed, code, _ = read_all(socket)
    assert code == 1000
    assert [json.loads(data) for data in over_sse] == replayed
    assert replayed[-1]["type"] == "complete"

"""`serve --workers N` and `serve --reload` serve like a single process: each worker, and
each child the reloader starts, writes our start-up lines and our log lines (the access
log included), and a worker drains its runs within `--grace-period` on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from dockrion_events import SseMessage, SseParser

from .conftest import kill_server, wait_ready, write_project

AGENT = """
import pathlib, time

def echo(payload):
    return {"answer": payload["query"]}

def held(payload, context):
    # "release": wait for that file to exist, then complete; otherwise emit until stopped
    context.sync_emit_token("started")
    release = payload.get("release")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if release is not None and pathlib.Path(release).exists():
            return {"released": True}
        if release is None:
            context.sync_emit_token(".")
        time.sleep(0.02)
    raise TimeoutError("never released")
"""

SERVING = re.compile(r"Serving agent 'test-agent' at (\S+) \(worker process (\d+)\)")


class Served:
    """A `dockrion-runtime serve` process (its own session, so killing it kills its
    workers) with its stdout and stderr in files."""

    def __init__(self, dockfile: Path, *args: str) -> None:
        self.stdout = dockfile.with_name("stdout.log")
        self.stderr = dockfile.with_name("stderr.log")
        port = harness.free_port()
        command = [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile)]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [*command, "--port", str(port), "--log-level", "info", *args],
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.url = wait_ready(self.process, port)

    def log(self) -> list[dict[str, Any]]:
        """The JSON lines of stderr so far (a line being written is left out)."""
        entries = []
        for line in self.stderr.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def wait_for(self, what: str, found: Any, timeout: float = 60) -> Any:
        """Poll `found()` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while not (result := found()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} within {timeout}s; stdout:\n{self.stdout.read_text()}\n"
                    f"stderr:\n{self.stderr.read_text()}"
                )
            time.sleep(0.05)
        return result


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        kill_server(server.process)


def redis_project(tmp_path: Path, redis_server: Any, handler: str) -> Path:
    """Several workers need a shared event backend."""
    extra = (
        "streaming:\n  backend: redis\n"
        f"  redis: {{url: '{redis_server.url}', key_prefix: w{uuid.uuid4().hex[:8]}}}\n"
    )
    return write_project(tmp_path, handler, extra, module=AGENT)


def access_line(server: Served, request_id: str) -> dict[str, Any] | None:
    return next((e for e in server.log() if e.get("request_id") == request_id), None)


def test_every_worker_writes_our_start_up_lines_and_access_log(
    tmp_path: Path, redis_server: Any, served: list[Served]
) -> None:
    server = Served(redis_project(tmp_path, redis_server, "echo"), "--workers", "2")
    served.append(server)
    answer = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "worker-access-1"})
    assert answer.status_code == 200

    entry = server.wait_for("an access line", lambda: access_line(server, "worker-access-1"))
    assert entry["level"] == "info" and entry["logger"] == "uvicorn.access"
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200', entry["message"])

    def serving() -> list[re.Match[str]] | None:
        lines = list(SERVING.finditer(server.stdout.read_text()))
        return lines if len(lines) == 2 else None

    lines = server.wait_for("a start-up line from each worker", serving)
    assert {m.group(1) for m in lines} == {server.url}
    workers = {int(m.group(2)) for m in lines}
    assert len(workers) == 2 and server.process.pid not in workers
    # and each worker logs uvicorn's own start-up lines in our format (once it has written
    # ours: the app is built before uvicorn starts serving it)
    expected = {f"Started server process [{pid}]" for pid in workers}

    def uvicorn_started() -> bool:
        return {e["message"] for e in server.log()} >= expected

    server.wait_for("uvicorn's start-up line from each worker", uvicorn_started)


def test_workers_drain_runs_within_the_grace_period_on_sigterm(
    tmp_path: Path, redis_server: Any, served: list[Served]
) -> None:
    grace = 6.0
    dockfile = redis_project(tmp_path, redis_server, "held")
    server = Served(dockfile, "--workers", "2", "--grace-period", str(grace))
    served.append(server)
    release = tmp_path / "release"
    held = httpx.post(f"{server.url}/runs", json={"query": "x", "release": str(release)})
    endless = httpx.post(f"{server.url}/runs", json={"query": "x"})
    runs = {"held": held.json()["run_id"], "endless": endless.json()["run_id"]}

    events: dict[str, list[tuple[float, SseMessage]]] = {name: [] for name in runs}
    streaming = {name: threading.Event() for name in runs}

    def follow(name: str) -> None:
        url = f"{server.url}/runs/{runs[name]}/events"
        parser = SseParser()
        try:
            with httpx.stream("GET", url, timeout=60) as response:
                for chunk in response.iter_bytes():
                    for message in parser.feed(chunk):
                        events[name].append((time.monotonic(), message))
                        if message.event == "token":
                            streaming[name].set()
        except httpx.TransportError:
            return  # cut: the events so far say what the test needs

    readers = [threading.Thread(target=follow, args=(name,), daemon=True) for name in runs]
    for reader in readers:
        reader.start()
    for name, ready in streaming.items():
        assert ready.wait(60), f"the {name} run did not start"

    sigterm = time.monotonic()
    server.process.send_signal(signal.SIGTERM)  # to the parent, as an orchestrator does

    def draining() -> bool:
        counts = [
            int(m.group(1))
            for e in server.log()
            if (
                m := re.fullmatch(
                    rf"waiting up to {grace:g}s for (\d+) running agent\(s\)", e["message"]
                )
            )
        ]
        return sum(counts) == 2

    server.wait_for("each worker draining its runs", draining)
    release.touch()  # the held run finishes during the drain
    for reader in readers:
        reader.join(60)
        assert not reader.is_alive(), "a stream did not end"
    assert server.process.wait(60) == 0

    held_end = events["held"][-1][1]
    assert held_end.event == "complete"
    assert held_end.json()["output"] == {"released": True}
    # the run that would not finish ran for the whole grace period, then was cancelled
    ended_at, endless_end = events["endless"][-1]
    assert endless_end.event == "cancelled"
    assert endless_end.json()["reason"] == "shutdown"
    assert ended_at - sigterm >= grace - 0.5
    for name in runs:
        sequences = [int(message.id or -1) for _, message in events[name]]
        assert sequences == list(range(len(sequences)))


def test_the_reloaded_process_writes_our_start_up_lines_and_access_log(
    tmp_path: Path, served: list[Served]
) -> None:
    module = 'def handle(payload):\n    return {"version": 1}\n'
    server = Served(write_project(tmp_path, "handle", module=module), "--reload")
    served.append(server)
    url = server.url

    def answered_by(expected: int) -> str:
        """The request id of a call that the agent of version `expected` answered."""

        def attempt() -> str | None:
            request_id = uuid.uuid4().hex
            try:
                answer = httpx.post(
                    f"{url}/invoke", json={"query": "x"}, headers={"X-Request-ID": request_id}
                )
                version = answer.json()["output"]["version"]
            except (httpx.TransportError, KeyError, TypeError, ValueError):
                return None
            return request_id if version == expected else None

        request_id: str = server.wait_for(f"version {expected}", attempt)
        return request_id

    def check(request_id: str, processes: int) -> None:
        # each process the reloader starts writes its start-up lines and its access lines
        started = server.stdout.read_text().count(f"Serving agent 'test-agent' at {url}\n")
        assert started == processes
        entry = server.wait_for("an access line", lambda: access_line(server, request_id))
        assert entry["level"] == "info" and entry["logger"] == "uvicorn.access"
        assert entry["message"].endswith('"POST /invoke HTTP/1.1" 200')

    check(answered_by(1), 1)
    next(tmp_path.glob("agent_*.py")).write_text(module.replace("1", "2"))
    check(answered_by(2), 2)

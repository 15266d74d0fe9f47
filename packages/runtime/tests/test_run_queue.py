"""Background runs through the Redis queue, with real processes: an API instance (`serve
--no-run-agents`) and `dockrion-runtime worker` processes on a real redis-server. A worker
killed with SIGKILL mid-run: without `retry` the run ends RUN_ORPHANED; with it, another
worker runs it again and it completes on its second attempt; on SIGTERM a worker hands its
run back and another continues it. Every log is contiguous with one terminal event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
import pytest

from .conftest import kill_server, wait_ready
from .test_threads import record

AGENT = """
import os, pathlib, time

MARKS = pathlib.Path({marks!r})

def held(payload, context):
    # leaves its pid behind, emits, then waits for the test's release file
    (MARKS / f"{{context.run_id}}.{{os.getpid()}}").write_text("")
    for i in range(3):
        context.sync_emit_token(f"t{{i}} ")
    release = MARKS / f"release-{{context.run_id}}"
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {{"pid": os.getpid(), "query": payload["query"]}}
"""


class Deployment:
    """API instances and workers of one Dockfile on one Redis key prefix; every process is
    stopped at the end."""

    def __init__(
        self,
        tmp_path: Path,
        redis_url: str,
        queue: str,
        *,
        module: str = AGENT,
        target: str = 'handler: "queue_agent:held"',
        extra: str = "",
        environ: dict[str, str] | None = None,
    ) -> None:
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        (tmp_path / "queue_agent.py").write_text(module.format(marks=str(self.marks)))
        self.dockfile = tmp_path / "Dockfile.yaml"
        self.dockfile.write_text(
            textwrap.dedent(f"""\
                version: "1.0"
                agent: {{name: queue-agent, {target}}}
                io_schema: {{input: {{type: object}}}}
                expose: {{host: 127.0.0.1}}
                streaming:
                  backend: redis
                  events: {{allowed: all}}
                  redis:
                    url: {redis_url}
                    key_prefix: q{uuid.uuid4().hex[:8]}
                    queue: {{claim_after_seconds: 2, {queue}}}
                """)
            + extra
        )
        self.logs = tmp_path
        self.environ = {**os.environ, **(environ or {})}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "dockrion_runtime", *args, "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environ,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start(self, workers: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
        """An API instance and `workers` workers, started together; (API URL, workers)."""
        api_port = harness.free_port()
        api = self._spawn(
            f"api-{api_port}",
            "serve",
            str(self.dockfile),
            "--port",
            str(api_port),
            "--no-run-agents",
        )
        started = [self._worker() for _ in range(workers)]
        url = wait_ready(api, api_port, "API instance")
        for process, port in started:
            wait_ready(process, port, "worker")
        return url, [process for process, _ in started]

    def add_api(self) -> tuple[str, subprocess.Popen[bytes]]:
        port = harness.free_port()
        args = ("serve", str(self.dockfile), "--port", str(port), "--no-run-agents")
        process = self._spawn(f"api-{port}", *args)
        return wait_ready(process, port, "API instance"), process

    def add_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        started = [self._worker() for _ in range(count)]
        for process, port in started:
            wait_ready(process, port, "worker")
        return [process for process, _ in started]

    def live_workers(self) -> dict[int, subprocess.Popen[bytes]]:
        return {p.pid: p for p in self.workers if p.poll() is None}

    def _worker(self) -> tuple[subprocess.Popen[bytes], int]:
        port = harness.free_port()
        process = self._spawn(
            f"worker-{port}",
            "worker",
            str(self.dockfile),
            "--probe-port",
            str(port),
            "--grace-period",
            "1",
        )
        self.workers.append(process)
        return process, port

    def runner_of(self, run_id: str) -> int:
        """The pid of the worker that started the run's latest attempt."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = [int(mark.suffix[1:]) for mark in self.marks.glob(f"{run_id}.*")]
            if pids:
                return pids[-1]
            time.sleep(0.05)
        raise AssertionError(f"no worker started run {run_id}")

    def runners(self, run_id: str) -> set[int]:
        return {int(mark.suffix[1:]) for mark in self.marks.glob(f"{run_id}.*")}

    def release(self, run_id: str) -> None:
        (self.marks / f"release-{run_id}").write_text("")

    def stop(self) -> None:
        for process in self.processes:
            kill_server(process)


@pytest.fixture
def deployment(tmp_path: Path, redis_server: Any) -> Iterator[Any]:
    """`deployment(queue_yaml, **options)` -> a `Deployment` (stopped at the end)."""
    made: list[Deployment] = []

    def make(queue: str = "retry: false", **options: Any) -> Deployment:
        folder = tmp_path / f"d{len(made)}"
        folder.mkdir()
        made.append(Deployment(folder, redis_server.url, queue, **options))
        return made[-1]

    yield make
    for made_one in made:
        made_one.stop()


@pytest.fixture(scope="module")
def retrying(
    tmp_path_factory: pytest.TempPathFactory, redis_server: Any
) -> Iterator[tuple[Deployment, str]]:
    """One API instance and three workers with `retry: true`, shared by the module's tests
    (each starts workers again when fewer than two are left)."""
    deploy = Deployment(tmp_path_factory.mktemp("retrying"), redis_server.url, "retry: true")
    try:
        api, _ = deploy.start(workers=3)
        yield deploy, api
    finally:
        deploy.stop()


def events_of(api: str, run_id: str, connections: list[int] | None = None) -> list[dict[str, Any]]:
    """The run's whole log through the API, read to its end (resuming when cut; each
    connection counted in `connections`)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if connections is not None:
            connections.append(1)
        headers = {"Last-Event-ID": str(events[-1]["sequence"])} if events else {}
        with httpx.stream(
            "GET", f"{api}/runs/{run_id}/events", headers=headers, timeout=60
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        if events and events[-1]["type"] in ("complete", "error", "cancelled"):
            return events
    raise AssertionError(f"the log did not end: {events}")


def assert_one_contiguous_log(events: list[dict[str, Any]]) -> None:
    assert [event["sequence"] for event in events] == list(range(len(events)))
    terminal = [e for e in events if e["type"] in ("complete", "error", "cancelled")]
    assert len(terminal) == 1 and terminal[0] is events[-1]


def test_runs_created_on_an_api_instance_are_run_by_a_worker(
    retrying: tuple[Deployment, str],
) -> None:
    deploy, api = retrying
    created = httpx.post(f"{api}/runs", json={"query": "hello"}, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    runner = deploy.runner_of(run_id)
    assert runner in deploy.live_workers()  # a worker, not the API's process
    metrics = httpx.get(f"{api}/metrics", timeout=30).text
    assert "dockrion_queue_depth" in metrics and "dockrion_queue_held" in metrics
    deploy.release(run_id)
    events = events_of(api, run_id)
    assert_one_contiguous_log(events)
    assert events[-1]["type"] == "complete"
    assert events[-1]["output"] == {"pid": runner, "query": "hello"}
    run = httpx.get(f"{api}/runs/{run_id}", timeout=30).json()
    assert (run["status"], run["attempt"]) == ("COMPLETED", 1)


def test_a_killed_workers_run_without_retry_ends_orphaned(deployment: Any) -> None:
    deploy = deployment()
    api, workers = deploy.start(workers=2)
    run_id = httpx.post(f"{api}/runs", json={"query": "q"}, timeout=30).json()["run_id"]
    pid = deploy.runner_of(run_id)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    events = events_of(api, run_id)
    elapsed = time.monotonic() - killed
    assert_one_contiguous_log(events)
    assert (events[-1]["type"], events[-1]["code"]) == ("error", "RUN_ORPHANED")
    assert deploy.runners(run_id) == {pid}  # never run again
    assert [w.pid for w in workers if w.poll() is None] == [w.pid for w in workers if w.pid != pid]
    record("queue-orphaned-after-kill", [f"RUN_ORPHANED {elapsed:.1f}s after the SIGKILL"])


def _second_runner(deploy: Deployment, run_id: str, first: int) -> int:
    deadline = time.monotonic() + 60
    while len(deploy.runners(run_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    (second,) = deploy.runners(run_id) - {first}
    return second


def test_a_killed_workers_run_with_retry_completes_on_the_second_attempt(
    retrying: tuple[Deployment, str],
) -> None:
    deploy, api = retrying
    deploy.add_workers(max(0, 2 - len(deploy.live_workers())))
    run_id = httpx.post(f"{api}/runs", json={"query": "again"}, timeout=30).json()["run_id"]
    first = deploy.runner_of(run_id)
    os.kill(first, signal.SIGKILL)
    second = _second_runner(deploy, run_id, first)
    deploy.release(run_id)
    events = events_of(api, run_id)
    assert_one_contiguous_log(events)
    started = [e for e in events if e["type"] == "started"]
    assert [e.get("attempt") for e in started] == [None, 2]
    assert events[-1]["type"] == "complete"
    assert events[-1]["output"]["pid"] == second
    run = httpx.get(f"{api}/runs/{run_id}", timeout=30).json()
    assert (run["status"], run["attempt"]) == ("COMPLETED", 2)


def test_a_worker_stopped_with_sigterm_hands_its_run_to_another(
    retrying: tuple[Deployment, str],
) -> None:
    deploy, api = retrying
    deploy.add_workers(max(0, 2 - len(deploy.live_workers())))
    run_id = httpx.post(f"{api}/runs", json={"query": "handover"}, timeout=30).json()["run_id"]
    first = deploy.runner_of(run_id)
    worker = deploy.live_workers()[first]
    worker.send_signal(signal.SIGTERM)  # grace period 1 s: the run is still held
    assert worker.wait(60) == 0
    second = _second_runner(deploy, run_id, first)
    deploy.release(run_id)
    events = events_of(api, run_id)
    assert_one_contiguous_log(events)
    assert events[-1]["type"] == "complete" and events[-1]["output"]["pid"] == second
    assert [e.get("attempt") for e in events if e["type"] == "started"] == [None, 2]


def test_runs_enqueued_on_one_thread_run_one_after_the_other_on_the_workers(
    retrying: tuple[Deployment, str],
) -> None:
    deploy, api = retrying
    deploy.add_workers(max(0, 2 - len(deploy.live_workers())))
    params = {"thread_id": f"t-{uuid.uuid4().hex[:8]}", "multitask_strategy": "enqueue"}
    first = httpx.post(f"{api}/runs", json={"query": "1"}, params=params, timeout=30)
    second = httpx.post(f"{api}/runs", json={"query": "2"}, params=params, timeout=30)
    assert (first.status_code, second.status_code) == (202, 202), second.text
    first_id, second_id = first.json()["run_id"], second.json()["run_id"]
    deploy.runner_of(first_id)
    time.sleep(1)  # a worker has room for the second run: it waits for the thread's turn
    assert not deploy.runners(second_id)
    assert httpx.get(f"{api}/runs/{second_id}", timeout=30).json()["status"] == "ACCEPTED"
    deploy.release(first_id)
    deploy.runner_of(second_id)
    deploy.release(second_id)
    for run_id in (first_id, second_id):
        events = events_of(api, run_id)
        assert_one_contiguous_log(events)
        assert events[-1]["type"] == "complete"


def test_behind_nginx_killing_an_api_instance_loses_no_run(
    retrying: tuple[Deployment, str], tmp_path: Path
) -> None:
    if harness.nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed; .ci/run must install it")
        pytest.skip("nginx is not installed")
    deploy, api = retrying
    deploy.add_workers(max(0, 2 - len(deploy.live_workers())))
    other, other_process = deploy.add_api()
    proxy = harness.Nginx(tmp_path / "nginx", [url.removeprefix("http://") for url in (api, other)])
    proxy.start()
    try:
        run_ids = [
            httpx.post(f"{proxy.url}/runs", json={"query": str(n)}, timeout=30).json()["run_id"]
            for n in range(4)  # round robin: two created on each API instance
        ]
        for run_id in run_ids:
            deploy.runner_of(run_id)  # a worker has it
        kill_server(other_process)  # an API instance dies; the workers hold the runs
        for run_id in run_ids:
            deploy.release(run_id)
        for run_id in run_ids:
            events = events_of(proxy.url, run_id)  # nginx sends to the live instance
            assert_one_contiguous_log(events)
            assert events[-1]["type"] == "complete"
    finally:
        proxy.stop()

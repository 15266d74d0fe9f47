"""Timeouts that stop agents, and a SIGTERM that ends every open stream cleanly."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from dockrion_events import SseParser

from .conftest import agent_module, start_server, write_project

Serve = Callable[..., str]


def test_invoke_passes_a_context_and_a_timeout_stops_a_sync_agent(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve("endless", "arguments: {timeout_sec: 1}\n")
    module = agent_module(tmp_path)
    response = httpx.post(f"{url}/invoke", json={"query": "x"}, timeout=60)
    assert response.status_code == 504
    assert response.json() == {
        "success": False,
        "error": "Agent invocation timed out after 1s",
        "code": "RUN_TIMEOUT",
        "details": None,
        "request_id": response.headers["x-request-id"],
    }
    assert module.stopped.wait(30), "the timed-out agent kept running"


def test_invoke_works_for_agents_that_emit(serve: Serve) -> None:
    url = serve("echo")
    response = httpx.post(f"{url}/invoke", json={"query": "a b"})
    assert response.json()["output"] == {"answer": "a b"}


def test_sigterm_cancels_running_agents_with_reason_shutdown(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "endless")
    server, url = start_server(dockfile, "--grace-period", "0.5")
    try:
        run_id = httpx.post(f"{url}/runs", json={"query": "x"}).json()["run_id"]
        events = []
        signalled = False
        with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
            parser = SseParser()
            for chunk in response.iter_bytes():
                events += parser.feed(chunk)
                if not signalled and any(m.event == "token" for m in events):
                    server.send_signal(signal.SIGTERM)
                    signalled = True
        assert events[-1].event == "cancelled"
        assert events[-1].json()["reason"] == "shutdown"
        assert [int(m.id or -1) for m in events] == list(range(len(events)))
        # uvicorn re-raises the captured SIGTERM once shut down: a clean, signalled exit
        assert server.wait(60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_reload_picks_up_a_changed_agent(tmp_path: Path) -> None:
    module = 'def handle(payload):\n    return {"version": 1}\n'
    dockfile = write_project(tmp_path, "handle", module=module)
    server, url = start_server(dockfile, "--reload")

    def version() -> int | None:
        try:
            response = httpx.post(f"{url}/invoke", json={"query": "x"}, timeout=5)
            return int(response.json()["output"]["version"])
        except (httpx.TransportError, KeyError, ValueError):
            return None

    try:
        assert version() == 1
        agent_file = next(tmp_path.glob("agent_*.py"))
        agent_file.write_text(module.replace("1", "2"))
        deadline = time.monotonic() + 60
        while version() != 2:
            assert time.monotonic() < deadline, "the change was not picked up"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(30)

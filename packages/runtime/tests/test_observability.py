"""Metrics, request ids and CORS, over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import harness
import httpx

from dockrion_runtime import create_app

from .conftest import wait_ready, write_project

Serve = Callable[..., str]


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_count_requests_by_route_template_and_events(serve: Serve) -> None:
    url = serve("echo")
    httpx.post(f"{url}/invoke/stream", json={"query": "a b"}).read()
    httpx.post(f"{url}/invoke", json={"nope": 1})
    run_id = httpx.post(f"{url}/runs", json={"query": "c"}).json()["run_id"]
    httpx.get(f"{url}/runs/{run_id}/events").read()
    httpx.get(f"{url}/runs/{run_id}")
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "dockrion_requests_total", endpoint="/invoke/stream", status="200") == 1
    assert metric(text, "dockrion_requests_total", endpoint="/invoke", status="400") == 1
    assert metric(text, "dockrion_requests_total", endpoint="/runs/{run_id}", method="GET") == 1
    assert metric(text, "dockrion_events_sent_total", agent="test-agent") >= 2 * 2 + 2 + 5
    assert metric(text, "dockrion_active_streams", agent="test-agent") == 0
    assert "dockrion_request_latency_seconds_bucket" in text


def test_two_apps_in_one_process(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo")
    first, second = create_app(dockfile), create_app(dockfile)
    assert first.state.runtime.metrics.registry is not second.state.runtime.metrics.registry


def test_request_ids_are_echoed_or_made(serve: Serve) -> None:
    url = serve("echo")
    made = httpx.get(f"{url}/health").headers["x-request-id"]
    assert len(made) == 32
    assert (
        httpx.get(f"{url}/health", headers={"X-Request-ID": "trace-123"}).headers["x-request-id"]
        == "trace-123"
    )
    # a value HTTP allows but our ids do not (a control byte such as \x7f is refused by
    # the HTTP parser itself, before any application code)
    assert (
        httpx.get(f"{url}/health", headers={"X-Request-ID": "bad id;x"}).headers["x-request-id"]
        != "bad id;x"
    )


def test_cors_follows_expose_cors(serve: Serve) -> None:
    url = serve(
        "echo",
        "expose:\n  host: 127.0.0.1\n  cors: {origins: ['https://app.example.com'], methods: [POST]}\n",
    )
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    allowed = httpx.options(f"{url}/invoke", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    denied = httpx.options(f"{url}/invoke", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers


def _serve_logging(dockfile: Path, log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`serve` with its stderr (every log line) in `log`."""
    port = harness.free_port()
    command = [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return process, wait_ready(process, port)


def _lines_with(log: Path, needle: str, deadline: float) -> list[str]:
    """The log's lines holding `needle`, once there is one (or at the deadline)."""
    while True:
        lines = [line for line in log.read_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_the_access_log_has_one_line_per_request_with_its_request_id(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo")
    log = tmp_path / "serve.log"
    process, url = _serve_logging(dockfile, log)
    try:
        httpx.get(f"{url}/health?probe=1", headers={"X-Request-ID": "trace-access-1"})
        httpx.post(f"{url}/invoke", json={"nope": 1}, headers={"X-Request-ID": "trace-access-2"})
        first = _lines_with(log, "trace-access-1", time.monotonic() + 30)
        second = _lines_with(log, "trace-access-2", time.monotonic() + 30)
    finally:
        process.terminate()
        process.wait(30)
    assert len(first) == 1 and len(second) == 1  # ours, and uvicorn's record not besides
    entry = json.loads(first[0])
    assert entry["level"] == "info" and entry["logger"] == "uvicorn.access"
    assert re.fullmatch(
        r'127\.0\.0\.1:\d+ - "GET /health\?probe=1 HTTP/1\.1" 200', entry["message"]
    )
    assert entry["request_id"] == "trace-access-1"
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert json.loads(second[0])["message"].endswith('"POST /invoke HTTP/1.1" 400')


def test_the_access_log_follows_the_log_format_and_level(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo")
    text_log, quiet_log = tmp_path / "text.log", tmp_path / "quiet.log"
    text, text_url = _serve_logging(dockfile, text_log, "--log-format", "text")
    quiet, quiet_url = _serve_logging(dockfile, quiet_log, "--log-level", "warning")
    try:
        httpx.get(f"{text_url}/health")
        httpx.get(f"{quiet_url}/health")
        lines = _lines_with(text_log, "GET /health HTTP/1.1", time.monotonic() + 30)
        # a line goes out at the end of the loop turn that answered: by this second
        # answer the first one's line would be in the log
        httpx.get(f"{quiet_url}/health")
    finally:
        for process in (text, quiet):
            process.terminate()
            process.wait(30)
    assert len(lines) == 1
    assert re.fullmatch(
        r'INFO uvicorn\.access: 127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200', lines[0]
    )
    assert "uvicorn.access" not in quiet_log.read_text()


def test_serve_called_in_process_leaves_no_access_log_behind(tmp_path: Path) -> None:
    """`main` installs its own access log; once it returns, servers that this process
    starts later log access lines through uvicorn again, not into that run's stream."""
    import logging

    from dockrion_runtime.cli import main
    from dockrion_runtime.logs import AccessLog

    assert main(["serve", str(tmp_path / "missing.yaml"), "--log-level", "info"]) == 1
    assert AccessLog.current is None
    assert logging.getLogger("uvicorn.access").propagate


def _serve_on_a_terminal(dockfile: Path, request_id: str, needle: str, *args: str) -> str:
    """`serve` with its stderr on a pseudo-terminal: what it wrote there by the time
    `needle` appeared, after a request with `request_id` made the agent fail."""
    import os
    import pty
    import select

    port = harness.free_port()
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port"]
    process = subprocess.Popen(
        [*command, str(port), *args], stdout=subprocess.DEVNULL, stderr=secondary
    )
    os.close(secondary)
    output = b""
    try:
        url = wait_ready(process, port)
        httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-Request-ID": request_id})
        deadline = time.monotonic() + 30
        while needle.encode() not in output and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    output += os.read(primary, 65536)
                except OSError:  # the server exited: nothing more to read
                    break
    finally:
        process.terminate()
        process.wait(30)
        os.close(primary)
    return output.decode(errors="replace").replace("\r\n", "\n")


def test_logs_are_text_on_a_terminal_and_json_lines_otherwise(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "boom")
    on_terminal = _serve_on_a_terminal(dockfile, "tty-1", "ValueError: the agent broke")
    # a developer's terminal: Python's own traceback, line by line, and the request id
    assert "Traceback (most recent call last):\n" in on_terminal
    assert "\nValueError: the agent broke" in on_terminal
    assert "agent failed on /invoke (request id tty-1)" in on_terminal
    assert '{"time"' not in on_terminal
    # switched to JSON on a terminal: one JSON object per line
    forced = _serve_on_a_terminal(dockfile, "tty-2", "tty-2", "--log-format", "json")
    failure = next(line for line in forced.splitlines() if "tty-2" in line)
    assert "the agent broke" in json.loads(failure)["exception"]
    # not a terminal (a file, a pipe, a collector): JSON lines by default
    log = tmp_path / "serve.log"
    process, url = _serve_logging(dockfile, log)
    try:
        httpx.post(f"{url}/invoke", json={"query": "x"}, headers={"X-Request-ID": "file-1"})
        lines = _lines_with(log, "Traceback", time.monotonic() + 30)
    finally:
        process.terminate()
        process.wait(30)
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["request_id"] == "file-1" and "ValueError: the agent broke" in entry["exception"]

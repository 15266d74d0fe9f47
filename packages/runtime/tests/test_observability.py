"""Metrics, request ids and CORS, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from dockrion_runtime import create_app

from .conftest import write_project

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

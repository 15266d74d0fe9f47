"""Pattern A and the JSON endpoints, over real HTTP against a live uvicorn server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

import dockrion_runtime
from dockrion_events import SseParser, parse_sse

from .conftest import agent_module, write_project

Serve = Callable[..., str]


def stream(url: str, body: object) -> tuple[httpx.Response, list[dict[str, object]], list[str]]:
    with httpx.stream("POST", f"{url}/invoke/stream", json=body, timeout=60) as response:
        raw = b"".join(response.iter_bytes())
    messages = list(parse_sse(raw))
    return response, [json.loads(m.data) for m in messages], [m.event for m in messages]


def test_health_ready_info_schema(serve: Serve) -> None:
    url = serve("echo")
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["service"] == "runtime:test-agent"
    assert health["timestamp"].endswith("+00:00")
    assert httpx.get(f"{url}/ready").json() == {
        "success": True,
        "status": "ready",
        "agent": "test-agent",
    }
    info = httpx.get(f"{url}/info").json()
    assert info["agent"]["mode"] == "handler" and info["auth_enabled"] is False
    schema = httpx.get(f"{url}/schema").json()
    assert schema["input_schema"]["required"] == ["query"] and schema["output_schema"] == {}


def test_health_names_the_runtime_version_and_the_agent_version_apart(serve: Serve) -> None:
    url = serve("echo", "metadata: {version: 2.3.4}\n")
    health = httpx.get(f"{url}/health").json()
    assert health["runtime_version"] == dockrion_runtime.__version__
    assert health["agent_version"] == "2.3.4"
    assert health["version"] == "2.3.4"  # kept: the agent's, as clients already read it
    assert {"status", "service", "timestamp", "agent", "framework"} <= set(health)


def test_the_welcome_page_is_styled_and_links_the_playground_docs_and_openapi(
    serve: Serve,
) -> None:
    url = serve("echo", "auth: {mode: api_key}\n", environ={"DOCKRION_API_KEY": "k"})
    page = httpx.get(f"{url}/")
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<style>" in text and "--accent" in text  # the playground's look
    for href in ("/playground", "/docs", "/openapi.json"):
        assert f'href="{href}"' in text
    assert "POST /invoke/stream" in text  # every route is listed
    # a curl that works as pasted: this server's address, a body the agent takes, the key
    assert f"curl -N -X POST {url}/invoke/stream" in text
    assert "X-API-Key: $DOCKRION_API_KEY" in text


def test_invoke_returns_output_and_metadata(serve: Serve) -> None:
    url = serve("no_context")
    response = httpx.post(f"{url}/invoke", json={"query": "hi", "extra": [1, 2]})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["output"] == {
        "echo": {"query": "hi", "extra": [1, 2]}
    }  # undeclared fields pass through
    assert body["metadata"]["agent"] == "test-agent"


def test_bad_bodies_get_clear_errors(serve: Serve) -> None:
    url = serve("no_context", "arguments: {max_body_bytes: 1000}\n")
    missing = httpx.post(f"{url}/invoke", json={"other": 1})
    assert missing.status_code == 400
    assert missing.json() == {
        "success": False,
        "error": "Input validation failed",
        "code": "VALIDATION_ERROR",
        "details": [{"loc": ["body", "query"], "msg": "field required"}],
    }
    wrong_type = httpx.post(f"{url}/invoke", json={"query": 5})
    assert wrong_type.json()["details"] == [
        {"loc": ["body", "query"], "msg": "must be of type string"}
    ]
    malformed = httpx.post(
        f"{url}/invoke", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, "VALIDATION_ERROR")
    too_big = httpx.post(f"{url}/invoke", json={"query": "x" * 5000})
    assert (too_big.status_code, too_big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    stream_bad = httpx.post(f"{url}/invoke/stream", json={"nope": 1})
    assert (stream_bad.status_code, stream_bad.json()["code"]) == (400, "VALIDATION_ERROR")


def test_agent_errors_have_codes(serve: Serve) -> None:
    url = serve("boom")
    response = httpx.post(f"{url}/invoke", json={"query": "x"})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "success": False,
        "error": f"Agent raised ValueError; the server log has the details (request id "
        f"{request_id}). To return the message too, set 'observability: {{verbose_errors: "
        "true}' in the Dockfile (development only)",
        "code": "AGENT_EXECUTION_ERROR",
        "details": {"error_type": "ValueError", "request_id": request_id},
        "request_id": request_id,
    }
    _, events, types = stream(url, {"query": "x"})
    assert types == ["started", "error"]
    assert events[-1]["code"] == "AGENT_EXECUTION_ERROR"


def test_stream_sends_every_event_in_order_with_ids(serve: Serve) -> None:
    url = serve("echo")
    response, events, types = stream(url, {"query": "one two three"})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert types[0] == "started" and types[-1] == "complete"
    assert types.count("token") == 3 and types.count("custom:note") == 3
    assert events[-1]["output"] == {"answer": "one two three"}
    assert isinstance(events[-1]["latency_seconds"], float)
    run_ids = {e["run_id"] for e in events}
    assert len(run_ids) == 1
    assert all(e["type"] == t for e, t in zip(events, types, strict=True))


def test_stream_applies_the_event_filter(serve: Serve) -> None:
    url = serve("echo", "streaming:\n  events: {allowed: chat}\n")
    _, events, types = stream(url, {"query": "a b"})
    assert types == ["started", "token", "token", "complete"]
    assert [e["sequence"] for e in events] == [0, 1, 2, 3]


def test_async_agent_and_current_context(serve: Serve) -> None:
    url = serve("aecho")
    _, _, types = stream(url, {"query": "q"})
    assert types == ["started", "token", "complete"]


def test_sync_agent_does_not_block_the_server(serve: Serve, tmp_path: Path) -> None:
    url = serve("wait_for_release")
    module = agent_module(tmp_path)
    with httpx.stream("POST", f"{url}/invoke/stream", json={"query": "x"}, timeout=60) as response:
        parser = SseParser()
        seen: list[str] = []
        chunks = response.iter_bytes()
        while "token" not in seen:
            seen += [m.event for m in parser.feed(next(chunks))]
        # The agent is now blocked inside its worker thread; the server still answers.
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        module.release.set()
        for chunk in chunks:
            seen += [m.event for m in parser.feed(chunk)]
    assert seen == ["started", "token", "complete"]


def test_client_disconnect_stops_the_agent(serve: Serve, tmp_path: Path) -> None:
    url = serve("endless")
    module = agent_module(tmp_path)
    with httpx.stream("POST", f"{url}/invoke/stream", json={"query": "x"}, timeout=60) as response:
        parser = SseParser()
        tokens = 0
        for chunk in response.iter_bytes():
            tokens += sum(m.event == "token" for m in parser.feed(chunk))
            if tokens >= 5:
                break
    assert module.stopped.wait(30), "the agent kept running after its client left"


def test_non_json_output_is_an_error_event(serve: Serve) -> None:
    url = serve("not_json")
    _, events, types = stream(url, {"query": "x"})
    assert types == ["started", "error"]
    assert events[-1]["code"] == "INVALID_OUTPUT"


def test_serve_exits_with_the_reason_when_the_module_is_missing(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo")
    dockfile.write_text(dockfile.read_text().replace("agent_", "missing_module_"))
    result = subprocess.run(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot load the agent: cannot import module 'missing_module_" in result.stderr


def test_serve_refuses_an_unset_variable_that_validate_only_warns_about(tmp_path: Path) -> None:
    # The shortest Redis Dockfile: `dockrion-schema validate` accepts it without the
    # deployment environment, serving cannot run without the URL its default names.
    dockfile = tmp_path / "Dockfile.yaml"
    dockfile.write_text(
        'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\n'
        "expose: {}\nstreaming: {backend: redis}\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    command = [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port", "1"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, env=environ
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == [
        f"  {dockfile}:5:22 streaming.redis.url: environment variable 'REDIS_URL' is not set "
        "(the default of streaming.redis.url is ${REDIS_URL}); set it, put it in .env, or "
        "write streaming.redis.url"
    ]
    assert "Uvicorn running" not in result.stderr


def test_several_workers_on_memory_are_refused(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo")
    result = subprocess.run(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "use Redis" in result.stderr or "backend: redis" in result.stderr


def test_ready_is_503_when_the_agent_fails_to_load(serve: Serve) -> None:
    url = serve("does_not_exist")
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 503
    assert ready.json()["code"] == "AGENT_NOT_READY"
    assert "has no attribute 'does_not_exist'" in ready.json()["error"]
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.post(f"{url}/invoke", json={"query": "x"}).status_code == 503

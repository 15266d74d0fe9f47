"""What callers learn when something fails: the type, a stable code and the request id;
never the agent's exception text unless verbose errors are switched on."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockrion_events import parse_sse

Serve = Callable[..., str]

LEAKY = """
def leaky(payload, context):
    context.sync_emit_token("working")
    raise RuntimeError("boom password=hunter2")

def broken_ids():
    raise RuntimeError("id generator exploded password=hunter2")

def broken_factory():
    raise RuntimeError("cannot reach the model password=hunter2")
"""


def sse_events(response: httpx.Response) -> list[dict[str, object]]:
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def test_agent_exception_text_never_reaches_the_caller(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve("leaky", module=LEAKY)
    with caplog.at_level(logging.ERROR, logger="dockrion.runtime"):
        invoked = httpx.post(f"{url}/invoke", json={"query": "x"})
        streamed = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, timeout=30)
        created = httpx.post(f"{url}/runs", json={"query": "x"})
        run_id = created.json()["run_id"]
        events = httpx.get(f"{url}/runs/{run_id}/events", timeout=30)
        run = httpx.get(f"{url}/runs/{run_id}").json()
    for text in (invoked.text, streamed.text, events.text, json.dumps(run)):
        assert "hunter2" not in text
        assert "ValueError" not in text and "RuntimeError" in text
    body = invoked.json()
    assert invoked.status_code == 500
    assert body["code"] == "AGENT_EXECUTION_ERROR"
    assert body["request_id"] == invoked.headers["x-request-id"]
    error = sse_events(streamed)[-1]
    assert error["type"] == "error" and error["code"] == "AGENT_EXECUTION_ERROR"
    assert error["details"] == {
        "error_type": "RuntimeError",
        "request_id": streamed.headers["x-request-id"],
    }
    assert run["status"] == "FAILED"
    assert run["error"]["code"] == "AGENT_EXECUTION_ERROR"
    assert run["error"]["details"]["request_id"] == created.headers["x-request-id"]
    assert sse_events(events)[-1]["error"] == run["error"]["message"]
    # the detail is in the log, under the request id the caller was given
    logged = [r for r in caplog.records if r.exc_info and "hunter2" in str(r.exc_info[1])]
    assert len(logged) == 3


def test_verbose_errors_are_an_explicit_opt_in(serve: Serve) -> None:
    url = serve("leaky", "observability: {verbose_errors: true}\n", module=LEAKY)
    invoked = httpx.post(f"{url}/invoke", json={"query": "x"})
    assert (
        invoked.json()["error"] == "Handler invocation failed: RuntimeError: boom password=hunter2"
    )
    streamed = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, timeout=30)
    assert "boom password=hunter2" in sse_events(streamed)[-1]["error"]  # type: ignore[operator]


def test_unexpected_500_names_the_request_id_it_answers_with(serve: Serve, tmp_path: Path) -> None:
    module = f"agent_{tmp_path.name.replace('-', '_')}"
    url = serve(
        "leaky",
        f"streaming:\n  id_generator: {{type: custom, handler: '{module}:broken_ids'}}\n",
        module=LEAKY,
    )
    response = httpx.post(f"{url}/runs", json={"query": "x"}, headers={"X-Request-ID": "trace-7"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-7"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json() == {
        "success": False,
        "error": "Internal server error (request id trace-7)",
        "code": "INTERNAL_ERROR",
        "details": None,
        "request_id": "trace-7",
    }
    assert "hunter2" not in response.text


def test_a_failing_factory_is_named_without_its_text(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="dockrion.runtime"):
        url = serve("broken_factory", module=LEAKY, entrypoint=True)
        ready = httpx.get(f"{url}/ready")
        invoked = httpx.post(f"{url}/invoke", json={"query": "x"})
    assert (ready.status_code, invoked.status_code) == (503, 503)
    for body in (ready.json(), invoked.json()):
        assert "RuntimeError" in body["error"] and "hunter2" not in body["error"]
        assert "the server log has the details" in body["error"]
    assert "hunter2" in caplog.text  # the operator still reads why
    verbose = serve(
        "broken_factory", "observability: {verbose_errors: true}\n", LEAKY, entrypoint=True
    )
    assert "password=hunter2" in httpx.get(f"{verbose}/ready").json()["error"]


FORGOT_SYNC = """
def forgot(payload, context):
    context.emit_token("lost")  # async, in a plain def: nothing can await it
    return {"answer": "done"}
"""


def test_a_plain_def_calling_the_async_emit_fails_the_run_instead_of_dropping_the_event(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="dockrion.runtime"):
        url = serve("forgot", module=FORGOT_SYNC)
        raw = httpx.post(f"{url}/invoke/stream", json={"query": "x"}, timeout=60).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    assert [e["type"] for e in events] == ["started", "error"]
    assert events[-1]["details"]["error_type"] == "SyncEmitRequiredError"
    assert "context.sync_emit_token(...)" in caplog.text  # the log says what to write

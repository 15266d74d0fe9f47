"""Token, cost and run metrics on `/metrics`: the tool-calling LangGraph example
(examples/langgraph-react, a scripted chat model reporting its usage) served by a real
server; after a series of runs the series equal the sums of the usage each run reported
in its `complete` event, counted independently from the model calls' callbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app
from .test_langgraph_react import ALICE, KEYS, ask, example_project, wait_for
from .test_observability import metric

pytest.importorskip("langgraph")

MODEL = "scripted-react-1"
PRICES = "  prices:\n    scripted-react-1: {input: 3.0, output: 15.0}\n"


def with_observability(folder: Path, observability: str) -> Path:
    dockfile = example_project(folder)
    dockfile.write_text(dockfile.read_text() + "observability:\n" + observability)
    return dockfile


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockfile = with_observability(tmp_path_factory.mktemp("metrics"), PRICES)
    with serve_app(create_app(dockfile, environ=KEYS)) as base:
        yield base


def streamed(url: str, text: str) -> dict[str, Any]:
    raw = httpx.post(f"{url}/invoke/stream", json=ask(text), headers=ALICE, timeout=60).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    assert events[-1]["type"] == "complete", events[-1]
    return dict(events[-1]["metadata"]["usage"])


def test_token_and_cost_series_equal_the_sums_of_the_runs(url: str) -> None:
    usages = [streamed(url, "weather in Paris?"), streamed(url, "hello there")]
    for text in ("weather in London?", "what is the weather in Tokyo?"):
        run_id = httpx.post(f"{url}/runs", json=ask(text), headers=ALICE).json()["run_id"]
        run = wait_for(url, run_id)
        assert run["status"] == "COMPLETED", run
        usages.append(dict(run["output"]["__usage__"]) if "__usage__" in run["output"] else {})
        events = httpx.get(f"{url}/runs/{run_id}/events", headers=ALICE, timeout=60).content
        complete = [json.loads(m.data) for m in parse_sse(events)][-1]
        usages[-1] = dict(complete["metadata"]["usage"])
    text = httpx.get(f"{url}/metrics").text
    inputs = sum(u["input_tokens"] for u in usages)
    outputs = sum(u["output_tokens"] for u in usages)
    assert inputs > 0 and outputs > 0
    tokens = "dockrion_model_tokens_total"
    assert metric(text, tokens, model=MODEL, type="input") == inputs
    assert metric(text, tokens, model=MODEL, type="output") == outputs
    expected_cost = (inputs * 3.0 + outputs * 15.0) / 1_000_000
    assert metric(text, "dockrion_model_cost_total", model=MODEL) == pytest.approx(expected_cost)
    assert metric(text, "dockrion_runs_total", outcome="completed") == 4
    assert metric(text, "dockrion_active_runs", agent="langgraph-react") == 0
    assert metric(text, "dockrion_active_subscribers", agent="langgraph-react") == 0
    assert metric(text, "dockrion_run_duration_seconds_count", agent="langgraph-react") == 4
    # only background runs wait to be started
    assert metric(text, "dockrion_run_queue_wait_seconds_count", agent="langgraph-react") == 2


def test_failed_and_refused_runs_are_counted_by_outcome(url: str) -> None:
    before = httpx.get(f"{url}/metrics").text
    failed = httpx.post(f"{url}/invoke", json={"messages": "not a list"}, headers=ALICE)
    assert failed.status_code == 400  # refused before any run: not a run
    after = httpx.get(f"{url}/metrics").text
    assert metric(after, "dockrion_runs_total", outcome="completed") == metric(
        before, "dockrion_runs_total", outcome="completed"
    )


def test_switched_off_families_are_not_exposed(tmp_path: Path) -> None:
    dockfile = with_observability(tmp_path, PRICES + "  metrics: {latency: false, cost: false}\n")
    with serve_app(create_app(dockfile, environ=KEYS)) as base:
        streamed(base, "weather in Paris?")
        text = httpx.get(f"{base}/metrics").text
    assert metric(text, "dockrion_model_tokens_total", model=MODEL, type="output") > 0
    assert "dockrion_model_cost_total" not in text
    assert "dockrion_request_latency_seconds" not in text
    assert "dockrion_run_duration_seconds" not in text
    assert metric(text, "dockrion_runs_total", outcome="completed") == 1


def test_without_an_exporter_there_is_no_tracer(tmp_path: Path) -> None:
    app = create_app(with_observability(tmp_path, "  tracing: true\n"), environ=KEYS)
    assert app.state.runtime.telemetry.tracer is None

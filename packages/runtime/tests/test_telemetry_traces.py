"""OpenTelemetry traces of runs, received by a real OTLP/HTTP endpoint in the test process
and decoded from protobuf (opentelemetry-proto): the tool-calling LangGraph example
(examples/langgraph-react) gives one trace per run, in the caller's trace, with node,
model and tool spans under the run span, GenAI attributes, and nothing a redaction
pattern matches. A run resumed later, or streamed from another instance on Redis, adds
to the same trace. Langfuse gets the same spans on its OTLP route with its Basic auth."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app
from .otlp_receiver import Receiver, Span, otlp_receiver
from .test_langgraph_react import ALICE, KEYS, ask, example_project, wait_for

pytest.importorskip("langgraph")
pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.proto")

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
SECRET = "sk-live-7hR2kQ9zX4"
SAFETY = "policies:\n  safety:\n    redact_patterns: ['sk-live-[A-Za-z0-9]+']\n"
RUN = "invoke_agent langgraph-react"


def traced_project(folder: Path, extra: str = "", streaming: str = "") -> Path:
    dockfile = example_project(folder, streaming)
    dockfile.write_text(dockfile.read_text() + SAFETY + extra)
    return dockfile


class Traced:
    def __init__(self, url: str, app: Any, receiver: Receiver) -> None:
        self.url, self.app, self.receiver = url, app, receiver

    def flush(self) -> object:
        return self.app.state.runtime.telemetry.tracer.flush()

    def run_spans(self, run_id: str, count: int = 1) -> list[Span]:
        """Every span received once the run's span (and `count` runs of its trace) ended."""

        def ready(spans: list[Span]) -> bool:
            runs = [s for s in spans if s.name == RUN]
            return any(s.attributes.get("dockrion.run_id") == run_id for s in runs)

        return self.receiver.wait_for(ready, self.flush)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    with otlp_receiver() as receiver:
        environ = {**KEYS, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        app = create_app(traced_project(tmp_path_factory.mktemp("traced")), environ=environ)
        with serve_app(app) as url:
            yield Traced(url, app, receiver)


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id]


def test_a_tool_calling_run_is_one_trace_in_the_callers(traced: Traced) -> None:
    headers = {**ALICE, **TRACEPARENT}
    raw = httpx.post(
        f"{traced.url}/invoke/stream",
        json=ask("what is the weather in Tokyo?"),
        headers=headers,
        timeout=60,
    ).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    run_id = events[0]["run_id"]
    usage = events[-1]["metadata"]["usage"]
    spans = [s for s in traced.run_spans(run_id) if s.trace_id == CALLER_TRACE]
    (run,) = [s for s in spans if s.name == RUN]
    assert run.parent_id == CALLER_SPAN
    assert run.service == "langgraph-react"
    attributes = run.attributes
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "langgraph-react"
    assert attributes["dockrion.run_id"] == run_id
    assert attributes["dockrion.caller"] == attributes["user.id"] == "api_key:alice"
    assert attributes["dockrion.outcome"] == "completed"
    assert attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == usage["output_tokens"]
    # the tree: run -> nodes agent, tools, agent; model calls in the agent nodes, the tool
    # call in the tools node
    nodes = sorted(children(spans, run), key=lambda s: s.attributes["langgraph.step"])
    assert [n.name for n in nodes] == ["node agent", "node tools", "node agent"]
    models = [m for n in nodes for m in children(spans, n) if m.name.startswith("chat")]
    assert [m.name for m in models] == ["chat scripted-react-1"] * 2
    assert [m.attributes["gen_ai.response.finish_reasons"] for m in models] == [
        ["tool_calls"],
        ["stop"],
    ]
    for model in models:
        assert model.kind == 3  # CLIENT
        assert model.attributes["gen_ai.request.model"] == "scripted-react-1"
        assert model.attributes["gen_ai.operation.name"] == "chat"
    assert sum(m.attributes["gen_ai.usage.input_tokens"] for m in models) == usage["input_tokens"]
    (tool,) = [t for t in children(spans, nodes[1]) if t.name.startswith("execute_tool")]
    call = next(e for e in events if e["type"] == "tool_call")
    assert tool.name == "execute_tool get_weather"
    assert tool.attributes["gen_ai.tool.call.id"] == call["call_id"]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "Tokyo"}
    assert tool.attributes["gen_ai.tool.call.result"] == "22°C, clear"


def test_secrets_never_leave_and_a_resumed_run_continues_the_trace(traced: Traced) -> None:
    url = traced.url
    created = httpx.post(
        f"{url}/runs",
        json=ask(f"email ana@example.com the key {SECRET}"),
        headers={**ALICE, **TRACEPARENT},
    ).json()
    first = wait_for(url, created["run_id"])
    assert first["output"]["__interrupt__"]
    assert first["metadata"]["trace"]["parent"] == TRACEPARENT["traceparent"]
    resumed = httpx.post(
        f"{url}/runs/{created['run_id']}/resume", json={"approved": True}, headers=ALICE
    ).json()
    second = wait_for(url, resumed["run_id"])
    assert second["status"] == "COMPLETED", second
    spans = traced.run_spans(resumed["run_id"])
    runs = {s.attributes["dockrion.run_id"]: s for s in spans if s.name == RUN}
    first_span, second_span = runs[created["run_id"]], runs[resumed["run_id"]]
    # one trace: the caller's, the resumed run below the run it resumes
    assert first_span.trace_id == second_span.trace_id == CALLER_TRACE
    assert second_span.parent_id == first_span.span_id
    assert first["metadata"]["trace"]["traceparent"].split("-")[2] == first_span.span_id
    tools = [s for s in spans if s.name == "execute_tool send_email"]
    assert tools and all("[REDACTED]" in t.attributes["gen_ai.tool.call.arguments"] for t in tools)
    # nothing a redaction pattern matches left in any export, in any form
    with traced.receiver.lock:
        bodies = [body for _, _, body in traced.receiver.requests]
    assert bodies and not [b for b in bodies if SECRET.encode() in b]
    assert not [s for s in spans if SECRET in json.dumps(s.attributes, ensure_ascii=False)]


def test_a_run_without_a_traceparent_starts_a_trace_of_its_own(traced: Traced) -> None:
    raw = httpx.post(
        f"{traced.url}/invoke/stream", json=ask("hello"), headers=ALICE, timeout=60
    ).content
    run_id = json.loads(next(iter(parse_sse(raw))).data)["run_id"]
    (run,) = [s for s in traced.run_spans(run_id) if s.attributes.get("dockrion.run_id") == run_id]
    assert run.status_code == 0 and run.attributes["dockrion.outcome"] == "completed"
    assert run.parent_id == "" and run.trace_id != CALLER_TRACE


def test_a_run_streamed_from_another_redis_instance_stays_one_trace(
    tmp_path: Path, redis_server: Any
) -> None:
    redis = f"  backend: redis\n  redis: {{url: '{redis_server.url}', key_prefix: tr-{tmp_path.name}}}\n"
    with otlp_receiver() as receiver:
        environ = {**KEYS, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        dockfile = traced_project(tmp_path, streaming=redis)
        first, second = create_app(dockfile, environ=environ), create_app(dockfile, environ=environ)
        with serve_app(first) as a, serve_app(second) as b:
            created = httpx.post(
                f"{a}/runs", json=ask("weather in Paris?"), headers={**ALICE, **TRACEPARENT}
            ).json()
            raw = httpx.get(
                f"{b}/runs/{created['run_id']}/events", headers=ALICE, timeout=60
            ).content
            assert json.loads(list(parse_sse(raw))[-1].data)["type"] == "complete"

            def flush() -> None:
                first.state.runtime.telemetry.tracer.flush()
                second.state.runtime.telemetry.tracer.flush()

            spans = receiver.wait_for(
                lambda got: {"stream_run", RUN} <= {s.name for s in got}, flush
            )
    (run,) = [s for s in spans if s.name == RUN]
    (stream,) = [s for s in spans if s.name == "stream_run"]
    assert run.trace_id == stream.trace_id == CALLER_TRACE
    assert stream.parent_id == run.span_id
    assert stream.attributes["dockrion.run_id"] == created["run_id"]


def test_langfuse_receives_the_spans_on_its_route_with_the_project_keys(tmp_path: Path) -> None:
    keys = {"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test"}
    with otlp_receiver() as receiver:
        langfuse = f"observability:\n  langfuse: {{host: '{receiver.url}'}}\n"
        app = create_app(traced_project(tmp_path, langfuse), environ={**KEYS, **keys})
        with serve_app(app) as url:
            raw = httpx.post(
                f"{url}/invoke/stream", json=ask("weather in Paris?"), headers=ALICE, timeout=60
            ).content
            run_id = json.loads(next(iter(parse_sse(raw))).data)["run_id"]
            spans = receiver.wait_for(
                lambda got: any(s.attributes.get("dockrion.run_id") == run_id for s in got),
                app.state.runtime.telemetry.tracer.flush,
            )
    paths = {path for path, _, _ in receiver.requests}
    assert paths == {"/api/public/otel/v1/traces"}
    _, headers, _ = receiver.requests[0]
    expected = base64.b64encode(b"pk-lf-test:sk-lf-test").decode()
    assert headers["authorization"] == f"Basic {expected}"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-langfuse-ingestion-version"] == "4"
    names = {s.name for s in spans}
    assert {RUN, "node agent", "chat scripted-react-1", "execute_tool get_weather"} <= names


def test_langfuse_without_its_keys_is_refused_at_start(tmp_path: Path) -> None:
    from dockrion_runtime.settings import SettingsError

    with pytest.raises(SettingsError, match="LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"):
        create_app(traced_project(tmp_path, "observability:\n  langfuse: {}\n"), environ=KEYS)

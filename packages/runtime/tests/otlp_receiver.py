"""A small OTLP/HTTP trace receiver for tests: a real HTTP server on loopback that keeps
every export request (path, headers, raw body) and decodes the protobuf payloads with
opentelemetry-proto, as a collector would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    status_message: str
    service: str


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def decode(body: bytes) -> list[Span]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[Span] = []
    for resource in request.resource_spans:
        service = str(_attributes(resource.resource.attributes).get("service.name", ""))
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append(
                    Span(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        span.kind,
                        _attributes(span.attributes),
                        [(e.name, _attributes(e.attributes)) for e in span.events],
                        span.status.code,
                        span.status.message,
                        service,
                    )
                )
    return spans


@dataclass
class Receiver:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self, path: str | None = None) -> list[Span]:
        with self.lock:
            bodies = [body for p, _, body in self.requests if path is None or p == path]
        return [span for body in bodies for span in decode(body)]

    def wait_for(
        self,
        ready: Callable[[list[Span]], bool],
        flush: Callable[[], object] | None = None,
        timeout: float = 60,
        path: str | None = None,
    ) -> list[Span]:
        """The spans received once `ready` says they are all there (flushing the app's
        exporter meanwhile); fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if flush is not None:
                flush()
            spans = self.spans(path)
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans not received: {[s.name for s in spans]}")
            time.sleep(0.05)


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    received: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with received.lock:
                received.requests.append((self.path, headers, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    received = Receiver(f"http://{host}:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()

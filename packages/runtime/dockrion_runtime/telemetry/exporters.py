"""Where traces go: the OTLP/HTTP exporter the standard `OTEL_*` variables describe, and
Langfuse's OTLP endpoint when `observability.langfuse` is set. No exporter configured, no
tracer: nothing is recorded, nothing is sent, no connection is made.

The variables are read from the app's environment (the shell, then the env files beside
the Dockfile), once at start-up:

- `OTEL_SDK_DISABLED=true`: no tracing at all.
- `OTEL_TRACES_EXPORTER`: `otlp` (what an endpoint implies), `console` (spans printed, for
  a look) or `none`.
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the whole URL) or `OTEL_EXPORTER_OTLP_ENDPOINT`
  (a base URL, `/v1/traces` added), with `..._HEADERS` (`key=value,...`), `..._TIMEOUT`
  (seconds) and `..._PROTOCOL` (only `http/protobuf` is supported).
- `OTEL_SERVICE_NAME` (default: the agent's name), `OTEL_BSP_SCHEDULE_DELAY` (ms).
- Langfuse: `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, `LANGFUSE_HOST`, unless the
  Dockfile's `observability.langfuse` writes them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from dockrion_schema import LangfuseConfig

from ..settings import SettingsError

__all__ = ["LANGFUSE_CLOUD", "LANGFUSE_ROUTE", "langfuse_target", "otlp_target", "span_exporters"]

LANGFUSE_CLOUD = "https://cloud.langfuse.com"
LANGFUSE_ROUTE = "/api/public/otel/v1/traces"
_OTLP_DEFAULT = "http://localhost:4318"


def _headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip()).lower()] = unquote(value.strip())
    return headers


def otlp_target(env: Mapping[str, str]) -> tuple[str, dict[str, str], float] | None:
    """(URL, headers, timeout) of the OTLP exporter the environment configures, or None."""
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen in ("none", "console"):
        return None
    url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not url and base:
        url = base.rstrip("/") + "/v1/traces"
    if not url and chosen == "otlp":  # asked for by name: the OTLP default address
        url = _OTLP_DEFAULT + "/v1/traces"
    if not url:
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    ) or "http/protobuf"
    if protocol.strip().lower() != "http/protobuf":
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}: Dockrion exports traces with "
            "OTLP over HTTP (http/protobuf); point it at the collector's HTTP port (4318)"
        )
    headers = _headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    headers.update(_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")))
    timeout = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT", "10"
    )
    try:
        seconds = float(timeout)
    except ValueError:
        raise SettingsError(f"OTEL_EXPORTER_OTLP_TIMEOUT is {timeout!r}, not seconds") from None
    return url, headers, seconds


def langfuse_target(
    config: LangfuseConfig | None, env: Mapping[str, str]
) -> tuple[str, dict[str, str]] | None:
    """(URL, headers) of the Langfuse project's OTLP endpoint, or None when not asked for.
    Raises SettingsError when a key is missing."""
    if config is None or not config.enabled:
        return None
    public = config.public_key or env.get("LANGFUSE_PUBLIC_KEY", "")
    secret = config.secret_key or env.get("LANGFUSE_SECRET_KEY", "")
    missing = [
        name
        for name, value in (("LANGFUSE_PUBLIC_KEY", public), ("LANGFUSE_SECRET_KEY", secret))
        if not value
    ]
    if missing:
        raise SettingsError(
            f"observability.langfuse needs the project's keys: set {' and '.join(missing)} "
            "(from the Langfuse project's settings)"
        )
    host = (config.host or env.get("LANGFUSE_HOST") or LANGFUSE_CLOUD).rstrip("/")
    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    return host + LANGFUSE_ROUTE, {
        "authorization": f"Basic {token}",
        "x-langfuse-ingestion-version": "4",
    }


def span_exporters(env: Mapping[str, str], langfuse: LangfuseConfig | None) -> list[Any]:
    """The span exporters to use (empty: tracing has nowhere to go)."""
    otlp = otlp_target(env)
    to_langfuse = langfuse_target(langfuse, env)
    console = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console"
    if otlp is None and to_langfuse is None and not console:
        return []
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    except ImportError:
        raise SettingsError(
            "traces are configured (OTEL_* variables or observability.langfuse) but the "
            "OpenTelemetry SDK is not installed: pip install 'dockrion-runtime[otel]'"
        ) from None
    exporters: list[Any] = []
    if otlp is not None:
        url, headers, timeout = otlp
        exporters.append(OTLPSpanExporter(endpoint=url, headers=headers, timeout=timeout))
    if to_langfuse is not None:
        url, headers = to_langfuse
        exporters.append(OTLPSpanExporter(endpoint=url, headers=headers, timeout=10))
    if console:
        exporters.append(ConsoleSpanExporter())
    return exporters

"""The "Try it" line `serve` prints: a curl of the agent's streaming (or plain) endpoint,
or a WebSocket client line when it is served over WebSocket only, with a body the agent
accepts and, behind auth, the credential header, so that the first command a user pastes
works.

The body comes from `io_schema.input`; when that lists no properties, from the input keys
the loaded agent declares (a LangGraph graph's state), else the quickstart's `{"query"}`.
A `messages` array holds one user message with text. An API key is never printed: the
header names the environment variable that holds it (`"X-API-Key: $DOCKRION_API_KEY"`),
which the shell fills in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from dockrion_schema import AuthConfig, DockSpec, IOSubSchema

__all__ = ["example_payload", "try_it_command"]

GREETING = "hello from dockrion"
_DEPTH = 8  # how deep an example follows nested objects and arrays
_ANY_HOST = {"0.0.0.0", "::", "[::]", ""}  # noqa: S104 - names of "every interface"
_USER_MESSAGE = {"role": "user", "content": GREETING}


def example_payload(schema: IOSubSchema | None, agent_keys: Iterable[str] | None = None) -> Any:
    """A small value `schema` accepts: its required properties (the first property when
    none is required), strings that say hello (a chat message's `role` is a user's, a
    `messages` array one user message), defaults, first enum values and minimums where the
    schema gives them. Without properties: the agent's own input keys (`messages` when it
    has them, else its first key), else the quickstart's `{"query": ...}`."""
    if schema is not None and schema.properties:
        spec = schema.model_dump(exclude_none=True)
        return _example(spec, "", 0, spec.get("$defs") or spec.get("definitions") or {})
    keys = sorted(agent_keys or ())
    if "messages" in keys:
        return {"messages": [dict(_USER_MESSAGE)]}
    if keys and "query" not in keys:
        return {keys[0]: GREETING}
    return {"query": GREETING}


def try_it_command(
    url: str,
    spec: DockSpec,
    agent_keys: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The line for the agent of `spec` served at `url` (`0.0.0.0` and `::` become
    `127.0.0.1`: a client cannot connect to "every interface" everywhere): a curl of
    `POST /invoke/stream` or `POST /invoke`, or, when the agent is served over WebSocket
    only, a Python line with the `websockets` client the runtime installs."""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    if host in _ANY_HOST:
        url = f"{scheme}://127.0.0.1:{port}"
    body = json.dumps(example_payload(spec.io_schema.input, agent_keys))
    quoted = body.replace("'", "'\\''")  # inside '...'
    credential = _credential(spec.auth, environ or {})
    if not (spec.expose.serves("sse") or spec.expose.rest):
        return _websocket_line(url.replace("http", "ws", 1), quoted, credential)
    path = "/invoke/stream" if spec.expose.serves("sse") else "/invoke"
    auth = f' -H "{credential[0]}: {credential[1]}${credential[2]}"' if credential else ""
    flags = "-N " if path.endswith("/stream") else ""
    return (
        f"curl {flags}-X POST {url}{path} -H 'Content-Type: application/json'{auth} -d '{quoted}'"
    )


def _websocket_line(url: str, quoted: str, credential: tuple[str, str, str] | None) -> str:
    """`WS /invoke/ws`: send the input, print every event until the server closes."""
    headers = "None"
    if credential:
        header, scheme, variable = credential
        headers = f'{{"{header}": "{scheme}" + os.environ["{variable}"]}}'
    code = (
        "import os, sys; from websockets.sync.client import connect; "
        f"ws = connect(sys.argv[1], additional_headers={headers}); ws.send(sys.argv[2]); "
        "[print(message) for message in ws]"
    )
    return f"python -c '{code}' {url}/invoke/ws '{quoted}'"


def _credential(auth: AuthConfig | None, environ: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(header, value prefix, environment variable): the client reads the credential from
    the variable the server read it from; None without auth."""
    if auth is None or auth.mode == "none":
        return None
    if auth.mode != "api_key":
        return ("Authorization", "Bearer ", "TOKEN")
    keys = auth.api_keys
    header = keys.header if keys is not None else "X-API-Key"
    variable = keys.env_var if keys is not None else "DOCKRION_API_KEY"
    if keys is not None and keys.prefix:
        single = keys.prefix.upper().rstrip("_") + "_API_KEY"
        held = sorted(n for n in environ if n == single or n.startswith(single + "_"))
        variable = held[0] if held else single
    return (header, "", variable)


def _example(spec: dict[str, Any], name: str, depth: int, defs: dict[str, Any]) -> Any:
    reference = spec.get("$ref")
    if isinstance(reference, str) and depth < _DEPTH:
        target = defs.get(reference.rsplit("/", 1)[-1])
        if isinstance(target, dict):
            return _example(target, name, depth + 1, defs)
    if "default" in spec:
        return spec["default"]
    if "const" in spec:
        return spec["const"]
    if spec.get("enum"):
        return spec["enum"][0]
    if spec.get("examples"):
        return spec["examples"][0]
    for choice in ("anyOf", "oneOf", "allOf"):
        options = spec.get(choice)
        if isinstance(options, list) and options and depth < _DEPTH:
            usable = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if usable:
                return _example(usable[0], name, depth + 1, defs)
    kind = spec.get("type", "object" if "properties" in spec else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "array" and name == "messages":
        item = spec.get("items") or {}
        fields = item.get("properties") if isinstance(item, dict) else None
        if not fields or {"role", "content"} <= set(fields):
            return [dict(_USER_MESSAGE)]
    if kind == "object":
        properties: dict[str, dict[str, Any]] = spec.get("properties") or {}
        if depth >= _DEPTH:
            return {}
        names = [n for n in spec.get("required", []) if n in properties] or list(properties)[:1]
        return {n: _example(properties[n], n, depth + 1, defs) for n in names}
    if kind == "array":
        if depth >= _DEPTH:
            return []
        return [_example(spec.get("items") or {}, name, depth + 1, defs)] * max(
            1, int(spec.get("minItems", 1))
        )
    if kind in ("integer", "number"):
        low = spec.get("minimum", spec.get("exclusiveMinimum", 0) + 1)
        return int(low) if kind == "integer" else low
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "user" if name == "role" else GREETING

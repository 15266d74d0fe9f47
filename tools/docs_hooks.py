"""MkDocs hooks for the documentation site (`mkdocs.yml`: `hooks:`).

- The Dockfile reference (`reference/dockfile.md`) is generated from the Dockfile's JSON
  Schema and the comments on the fields of the schema models, the StreamContext
  reference (`reference/stream-context.md`) from the class itself, and the tables of
  `events.md` (the fields of every event type, the presets) from the event models and
  the filter's presets, and the permission table of `security.md` from the runtime's route
  table, at every build: they cannot drift from the code.
- The navigation keeps only the pages that exist, and lists every other page of `docs/`
  under "More", so adding or removing a page never breaks the strict build.

The generators are plain functions (no MkDocs import) so tests can call them.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

GENERATED = {
    "reference/dockfile.md": "dockfile_reference",
    "reference/stream-context.md": "stream_context_reference",
}

# --- the Dockfile reference ----------------------------------------------------------------


def _field_notes(model: type[Any]) -> dict[str, str]:
    """The comments written above a field of `model` (and after it on its line)."""
    source = textwrap.dedent(inspect.getsource(model))
    lines = source.splitlines()
    notes: dict[str, str] = {}
    tree = ast.parse(source)
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#"):
            above.insert(0, lines[index].strip().lstrip("#").strip())
            index -= 1
        trailing = lines[node.lineno - 1].partition("  # ")[2].strip()
        if trailing.startswith("noqa"):
            trailing = trailing.partition(" - ")[2]
        notes[node.target.id] = " ".join([*above, trailing]).strip()
    return notes


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else None


def _code(value: Any) -> str:
    return "`" + json.dumps(value) + "`"


def _type(node: dict[str, Any], anchors: dict[str, str]) -> str:
    name = _ref_name(node)
    if name is not None:
        return f"[{name}](#{anchors[name]})" if name in anchors else name
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        text = " or ".join(_type(o, anchors) for o in options)
        return text + (" or null" if len(options) < len(node["anyOf"]) else "")
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    if "const" in node:
        return _code(node["const"])
    kind = node.get("type")
    if kind == "array":
        return "list of " + _grouped(_type(node.get("items", {}), anchors))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map of string to " + _grouped(_type(node["additionalProperties"], anchors))
    if isinstance(kind, str):
        return kind
    return "any"


def _grouped(text: str) -> str:
    return f"({text})" if " or " in text else text


def _bounds(node: dict[str, Any]) -> str:
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            node = {**option, **node}
    parts = []
    if "minimum" in node and "maximum" in node:
        parts.append(f"{node['minimum']} to {node['maximum']}")
    elif "minimum" in node:
        parts.append(f"at least {node['minimum']}")
    elif "exclusiveMinimum" in node:
        parts.append(f"more than {node['exclusiveMinimum']}")
    if "minLength" in node or "maxLength" in node:
        parts.append(f"{node.get('minLength', 0)} to {node.get('maxLength', 'any')} characters")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    return "; ".join(parts)


def _sections(schema: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """(YAML path, model name) of every section, in document order, from the root; and
    the other paths of a model used in more than one place."""
    found: list[tuple[str, str]] = [("", "DockSpec")]
    also: dict[str, list[str]] = {}
    seen = {"DockSpec"}

    def walk(path: str, node: dict[str, Any]) -> None:
        for key, prop in node.get("properties", {}).items():
            for option, suffix in _refs(prop):
                child = f"{path}.{key}{suffix}".lstrip(".")
                if option in seen:
                    also.setdefault(option, []).append(child)
                    continue
                seen.add(option)
                found.append((child, option))
                walk(child, schema["$defs"][option])

    walk("", schema)
    return found, also


def _refs(node: dict[str, Any], suffix: str = "") -> list[tuple[str, str]]:
    name = _ref_name(node)
    if name is not None:
        return [(name, suffix)]
    found: list[tuple[str, str]] = []
    for option in node.get("anyOf", []):
        found += _refs(option, suffix)
    if isinstance(node.get("items"), dict):
        found += _refs(node["items"], suffix + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _refs(node["additionalProperties"], suffix + ".<name>")
    return found


def dockfile_reference() -> str:
    from dockrion_schema import generate_json_schema
    from dockrion_schema.dockfile_v1 import SECTION_MODELS

    schema = generate_json_schema()
    models = {model.__name__: model for model in SECTION_MODELS}
    sections, also = _sections(schema)
    anchors = {
        name: (path or "top-level").replace(".", "-").replace("[]", "").lower()
        for path, name in sections
    }
    anchors = {
        name: "".join(c for c in anchor if c.isalnum() or c == "-")
        for name, anchor in anchors.items()
    }
    out = [
        "# Dockfile reference",
        "",
        "Generated from the schema models of `dockrion-schema` at every build of this site"
        " (the same models validate Dockfiles, and produce the JSON Schema shipped as"
        " `dockrion_schema/dockfile-v1.schema.json`), so it always matches the code."
        " Every section keeps unknown keys, so a Dockfile written for a newer version still"
        " loads. Check a Dockfile with `dockrion-schema validate Dockfile.yaml`.",
        "",
    ]
    for path, name in sections:
        node = schema if name == "DockSpec" else schema["$defs"][name]
        model = models[name]
        notes = _field_notes(model)
        title = ", ".join(f"`{p}`" for p in [path, *also.get(name, [])]) if path else "Top level"
        out += [f"## {title} {{#{anchors[name]}}}", ""]
        doc = inspect.getdoc(model)
        if doc and not doc.startswith("Every Dockfile section"):
            out += [" ".join(doc.split()), ""]
        required = set(node.get("required", []))
        out += ["| key | type | default | notes |", "|---|---|---|---|"]
        for key, prop in node.get("properties", {}).items():
            default = (
                "**required**"
                if key in required
                else (_code(prop["default"]) if "default" in prop else "")
            )
            note = "; ".join(filter(None, [_bounds(prop), notes.get(key, "")]))
            if prop.get("description") and prop["description"] not in note:
                note = "; ".join(filter(None, [note, prop["description"]]))
            cells = [f"`{key}`", _type(prop, anchors), default, note]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)


# --- the StreamContext reference -----------------------------------------------------------

# What agent code uses, in the order a reader meets it; a name that disappears from the
# class fails the build.
_AGENT_API = [
    ("Identity", ["run_id", "thread_id", "auth"]),
    (
        "Async (agent code that is `async def`)",
        [
            "emit_token",
            "emit_progress",
            "emit_step",
            "checkpoint",
            "emit_tool_call",
            "emit_tool_result",
            "emit",
            "flush",
        ],
    ),
    (
        "Sync (a plain `def` handler, run in a worker thread)",
        [
            "sync_emit_token",
            "sync_emit_progress",
            "sync_emit_step",
            "sync_checkpoint",
            "sync_emit_tool_call",
            "sync_emit_tool_result",
            "sync_emit",
        ],
    ),
    ("Policies and cancellation", ["is_tool_allowed", "cancelled", "on_cancel"]),
]
_NOTES = {
    "run_id": "The id of the run this context emits into.",
    "emit_token": "A `token` event: a piece of the model's output text.",
    "emit_progress": "A `progress` event: `step` name, `progress` from 0 to 1, a `message`.",
    "emit_step": "A `step` event: a node or stage finished, with its duration.",
    "checkpoint": "A `checkpoint` event: a named snapshot of data.",
    "cancelled": "True once the run is cancelled (the next emit raises `RunCancelledError`).",
}


def _parameters(function: Any) -> str:
    """The parameters as written in the source (annotations unquoted), without `self`."""
    shown: list[str] = []
    star = False
    for parameter in list(inspect.signature(function).parameters.values())[1:]:
        text = parameter.name
        if parameter.kind is parameter.VAR_KEYWORD:
            text = "**" + text
        elif parameter.kind is parameter.VAR_POSITIONAL:
            text, star = "*" + text, True
        elif parameter.kind is parameter.KEYWORD_ONLY and not star:
            shown.append("*")
            star = True
        if parameter.annotation is not parameter.empty:
            annotation = parameter.annotation
            text += ": " + (annotation if isinstance(annotation, str) else repr(annotation))
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        shown.append(text)
    return ", ".join(shown)


def stream_context_reference() -> str:
    from dockrion_events import StreamContext

    out = [
        "# StreamContext reference",
        "",
        "Generated from `dockrion_events.StreamContext` at every build. A handler that"
        " declares a `context` parameter receives the run's context; code deeper in the"
        " call stack gets it with `dockrion_events.get_current_context()`. Every emit"
        " appends one event to the run's log (see the [events reference](../events.md)).",
        "",
    ]
    for title, names in _AGENT_API:
        out += [f"## {title}", ""]
        for name in names:
            member = inspect.getattr_static(StreamContext, name)
            if isinstance(member, property):
                signature = f"context.{name}"
                doc = inspect.getdoc(member.fget)
            else:
                function = getattr(StreamContext, name)
                prefix = "await " if inspect.iscoroutinefunction(inspect.unwrap(function)) else ""
                signature = f"{prefix}context.{name}({_parameters(function)})"
                doc = inspect.getdoc(function)
            text = " ".join((doc or _NOTES.get(name, "")).split("\n\n")[0].split())
            out += [f"### `{name}`", "", "```python", signature, "```", "", text, ""]
    return "\n".join(out)


# --- the events reference -----------------------------------------------------------------

# Who emits each built-in type, and the fields it may carry beyond its model. A type added
# to the models without a line here fails the build; so does a line for a removed type.
_EMITTED_BY = {
    "started": "the runtime, first",
    "token": "`emit_token`, LangGraph/LangChain model output",
    "progress": "`emit_progress`",
    "step": "`emit_step`, a LangGraph node finishing",
    "checkpoint": "`checkpoint`",
    "tool_call": "`emit_tool_call`, a model asking for a tool",
    "tool_result": "`emit_tool_result`, a tool answering",
    "heartbeat": "the server, on idle streams, when allowed (never stored, no `id:` line)",
    "complete": "the runtime, when the agent returns",
    "error": "the runtime, when the agent fails or overruns",
    "cancelled": "the runtime, on DELETE, disconnect or shutdown",
}
_EXTRAS = {"token": "`node_name` (string) when the producing node is known"}
EVENT_MARKERS = ("<!-- generated: event types -->", "<!-- generated: event presets -->")


def _event_fields(model: type[Any], common: set[str]) -> str:
    schema = model.model_json_schema()
    fields = [
        f"`{name}` ({_type(prop, {})})"
        for name, prop in schema["properties"].items()
        if name not in common
    ]
    return ", ".join(fields) or "none"


def event_types_reference() -> str:
    from dockrion_events.models import EVENT_CLASSES, BaseEvent

    if set(_EMITTED_BY) != set(EVENT_CLASSES):
        raise ValueError(
            "tools/docs_hooks.py _EMITTED_BY does not match the event models: "
            f"{sorted(set(_EMITTED_BY) ^ set(EVENT_CLASSES))}"
        )
    base = BaseEvent.model_json_schema()["properties"]
    out = ["| field | type | |", "|---|---|---|"]
    notes = {
        "id": "`evt-` and 12 hex digits",
        "sequence": "from 0, one per stored event; the SSE `id:`",
        "type": "one of the types below, or `custom:<name>`",
        "timestamp": "ISO 8601, UTC",
    }
    for name, prop in base.items():
        out.append(f"| `{name}` | {_type(prop, {})} | {notes.get(name, '')} |")
    out += ["", "| type | fields of its own | emitted by |", "|---|---|---|"]
    for kind, model in EVENT_CLASSES.items():
        fields = _event_fields(model, set(base))
        if kind in _EXTRAS:
            fields += f"; {_EXTRAS[kind]}"
        out.append(f"| `{kind}` | {fields} | {_EMITTED_BY[kind]} |")
    out.append('| `custom:<name>` | whatever the agent gave | `emit("name", ...)` |')
    return "\n".join(out) + "\n"


def event_presets_reference() -> str:
    from dockrion_events.filter import PRESETS
    from dockrion_events.models import CONFIGURABLE_EVENT_TYPES

    mandatory = "started, complete, error, cancelled"
    out = [f"| preset | types (besides the four that always pass: {mandatory}) |", "|---|---|"]
    for name, types in PRESETS.items():
        if name == "all":
            shown = "every built-in type and every custom event"
            assert types == CONFIGURABLE_EVENT_TYPES | {"custom"}, types
        else:
            shown = ", ".join(f"`{t}`" for t in sorted(types)) or "none"
        default = " (the default)" if name == "all" else ""
        out.append(f"| `{name}`{default} | {shown} |")
    return "\n".join(out) + "\n"


# --- the permission table ----------------------------------------------------------------

PERMISSIONS_MARKER = "<!-- generated: permissions -->"

# Rows of the permission table that are rules of the run endpoints, not rows of the route
# table: reading another caller's run.
_OTHER_CALLERS = (
    "| another caller's run (`GET /runs/{id}`, `/events`, `WS /runs/{id}/ws`, "
    "`/ag-ui/runs/{id}`) | `read_logs` | never (404) |"
)


def permissions_reference() -> str:
    """The endpoints that ask for each permission, read from `ROUTE_TABLE`: one row per
    permission and kind of access, in the route table's order."""
    from dockrion_runtime.routes import ROUTE_TABLE

    rows: dict[tuple[str | None, str], list[str]] = {}
    for endpoint in ROUTE_TABLE:
        method = "WS" if endpoint.kind == "websocket" else endpoint.method
        owned = endpoint.path.startswith(("/runs/", "/ag-ui/runs/"))
        if endpoint.protected:
            without = "any authenticated caller" + (" (own runs only)" if owned else "")
        else:
            without = "public"
        rows.setdefault((endpoint.permission, without), []).append(f"`{method} {endpoint.path}`")
    out = ["| Endpoint | Permission | Without roles configured |", "|---|---|---|"]
    for (permission, without), endpoints in rows.items():
        named = f"`{permission}`" if permission else "none"
        out.append(f"| {', '.join(endpoints)} | {named} | {without} |")
    out.append(_OTHER_CALLERS)
    return "\n".join(out) + "\n"


# --- MkDocs hooks -------------------------------------------------------------------------


def _existing(entry: Any, docs: Path) -> Any:
    """The nav entry with every page that does not exist (or is not generated) left out."""
    if isinstance(entry, str):
        return entry if (docs / entry).is_file() or entry in GENERATED else None
    if isinstance(entry, list):
        kept = [e for e in (_existing(item, docs) for item in entry) if e is not None]
        return kept or None
    if isinstance(entry, dict):
        [(title, value)] = entry.items()
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return entry
        kept = _existing(value, docs)
        return {title: kept} if kept is not None else None
    return entry


def _pages(entry: Any) -> set[str]:
    if isinstance(entry, str):
        return {entry}
    if isinstance(entry, list):
        return set().union(*(_pages(item) for item in entry)) if entry else set()
    if isinstance(entry, dict):
        return _pages(next(iter(entry.values())))
    return set()


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    nav = _existing(config["nav"] or [], docs) or []
    listed = _pages(nav)
    others = sorted(
        path.relative_to(docs).as_posix()
        for path in docs.rglob("*.md")
        if path.relative_to(docs).as_posix() not in listed
    )
    if others:
        nav.append({"More": others})
    config["nav"] = nav
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == "security.md":
        if PERMISSIONS_MARKER not in markdown:
            raise ValueError(f"docs/security.md lost its marker {PERMISSIONS_MARKER}")
        return markdown.replace(PERMISSIONS_MARKER, permissions_reference())
    if page.file.src_uri != "events.md":
        return markdown
    for marker, generate in zip(
        EVENT_MARKERS, (event_types_reference, event_presets_reference), strict=True
    ):
        if marker not in markdown:
            raise ValueError(f"docs/events.md lost its marker {marker}")
        markdown = markdown.replace(marker, generate())
    return markdown


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File  # type: ignore[import-not-found, unused-ignore]

    for path, function in GENERATED.items():
        content = globals()[function]()
        files.append(File.generated(config, path, content=content))
    return files

"""`dockrion-schema`: validate Dockfiles in CI, print the JSON Schema for editors.

Exit status: 0 every file valid, 1 some file invalid, 2 usage error. Validation needs no
deployment environment: an unset `${VAR}` is a warning unless `--require-env` is given.
It never imports agent code: what an entrypoint names (a factory or an object) is read
from its module's source.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .dockfile_v1 import DockSpec
from .entrypoint import entrypoint_kind
from .json_schema import generate_json_schema
from .loader import DockfileReport, check_dockfile

__all__ = ["describe", "main"]


def describe(spec: DockSpec, base_dir: Path | None = None) -> str:
    """One line on what a Dockfile declares. With `base_dir` (the Dockfile's folder), what
    an entrypoint names, read from its module's source (never imported)."""
    agent = spec.agent
    parts = [f"agent {agent.name!r} ({agent.mode} {agent.target}, framework {agent.framework})"]
    if agent.mode == "entrypoint" and agent.entrypoint is not None and base_dir is not None:
        parts.append(f"entrypoint {entrypoint_kind(agent.entrypoint, base_dir)}")
    routes: list[str] = []
    if spec.expose.rest:
        routes.append("POST /invoke")
    if spec.expose.serves("sse"):
        routes.append("POST /invoke/stream")
    if spec.expose.serves("websocket"):
        routes.append("WS /invoke/ws")
    streaming = spec.streaming
    if streaming is None or streaming.async_runs:
        backend = streaming.backend if streaming else "memory"
        routes.append(f"/runs ({backend} backend)")
    parts.append("serves " + ", ".join(routes))
    mode = spec.auth.mode if spec.auth else "none"
    parts.append(f"auth {mode}")
    return "; ".join(parts)


def _text(report: DockfileReport) -> str:
    lines = [str(issue) for issue in report.errors]
    lines += [f"{issue} [warning]" for issue in report.warnings]
    waiting = (
        f"not checked until their variables are set: {', '.join(report.unchecked)}"
        if report.unchecked
        else ""
    )
    if report.ok and report.spec is not None:
        summary = describe(report.spec, Path(report.source).parent) + (
            f"; {waiting}" if waiting else ""
        )
        lines.append(f"{report.source}: valid: {summary}")
    elif report.ok:
        lines.append(f"{report.source}: valid ({waiting})")
    else:
        count = len(report.errors)
        lines.append(f"{report.source}: invalid ({count} error{'s' if count != 1 else ''})")
    return "\n".join(lines)


def _json(report: DockfileReport) -> dict[str, object]:
    return {
        "file": report.source,
        "valid": report.ok,
        "summary": describe(report.spec, Path(report.source).parent)
        if report.ok and report.spec
        else None,
        "errors": [{"severity": "error", **issue.to_dict()} for issue in report.errors],
        "warnings": [{"severity": "warning", **issue.to_dict()} for issue in report.warnings],
        "unchecked": report.unchecked,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockrion-schema", description="Validate Dockfiles and export their JSON Schema."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser("validate", help="validate one or more Dockfiles")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="Dockfile.yaml paths")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument("--env-file", help="extra env file for ${VAR} substitution")
    validate.add_argument(
        "--require-env",
        action="store_true",
        help="fail when a ${VAR} is not set, as serving does (default: a warning naming the "
        "variable and the field; the value is checked once the variable is set)",
    )
    validate.add_argument(
        "--strict",
        action="store_true",
        help="treat every warning (unknown fields, unset variables) as an error",
    )
    schema = commands.add_parser("json-schema", help="print the Dockfile JSON Schema")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "json-schema":
        text = json.dumps(generate_json_schema(), indent=2, ensure_ascii=False) + "\n"
        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            sys.stdout.write(text)
        return 0
    reports = [
        check_dockfile(path, env_file=args.env_file, require_env=args.require_env)
        for path in args.paths
    ]
    failed = any(not r.ok or (args.strict and r.warnings) for r in reports)
    if args.format == "json":
        payload = {"valid": not failed, "files": [_json(report) for report in reports]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(_text(report) for report in reports) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

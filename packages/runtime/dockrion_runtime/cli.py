"""`dockrion-runtime serve [Dockfile.yaml]`: one command serves the agent."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dockrion_schema import DockfileError, load_dockspec

from ._version import __version__
from .agent import AgentLoadError, load_agent

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockrion-runtime", description="Serve a Dockrion agent.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the agent of a Dockfile over HTTP")
    serve.add_argument("dockfile", nargs="?", default="Dockfile.yaml")
    serve.add_argument("--host", help="bind address (default: expose.host)")
    serve.add_argument("--port", type=int, help="bind port (default: expose.port)")
    serve.add_argument("--env-file", help="extra env file for ${VAR} substitution")
    serve.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="json lines with the request id (default), or plain text",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from .logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)
    path = Path(args.dockfile)
    try:
        spec = load_dockspec(path, env_file=args.env_file)
    except DockfileError as error:
        print(str(error), file=sys.stderr)
        return 1
    backend = spec.streaming.backend if spec.streaming else "memory"
    if args.workers > 1 and backend == "memory":
        print(
            f"error: --workers {args.workers} needs a shared event backend: the memory backend "
            "lives in one process, so each worker would see only its own runs. Set "
            "'streaming: {backend: redis}' in the Dockfile, or use --workers 1.",
            file=sys.stderr,
        )
        return 2
    try:
        load_agent(spec, path.parent)  # fail here, with the reason, rather than at first call
    except AgentLoadError as error:
        print(f"error: cannot load the agent: {error}", file=sys.stderr)
        return 1

    import uvicorn

    from .app import create_app

    host = args.host or spec.expose.host
    port = args.port if args.port is not None else spec.expose.port
    from .auth import AuthConfigError

    try:
        app = create_app(path, env_file=args.env_file)
    except AuthConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    url = f"http://{host}:{port}"
    print(f"Serving agent '{spec.agent.name}' at {url}")
    print("Try it:")
    print(
        f"  curl -N -X POST {url}/invoke/stream -H 'Content-Type: application/json' "
        '-d \'{"query": "hello from dockrion"}\''
    )
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

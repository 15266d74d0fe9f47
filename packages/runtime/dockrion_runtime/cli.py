"""`dockrion-runtime serve [Dockfile.yaml]`: one command serves the agent;
`dockrion-runtime worker [Dockfile.yaml]` runs it on queued runs, apart from the API."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from dockrion_schema import DockfileError, DockfileWarning, DockSpec, ServerLimits, load_dockspec

from ._version import __version__
from .logs import configure_logging, release_access_log
from .serve.launch import ServePlan, serve
from .serve.worker import work

__all__ = ["main"]

_LIMITS = ServerLimits()  # the schema's defaults, which the help texts quote


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
        "--reload", action="store_true", help="restart when files beside the Dockfile change"
    )
    serve.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running agents may take to finish before they are "
        "cancelled with reason 'shutdown' (default %(default)g)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        metavar="SECONDS",
        help="time a client has to send a request line and headers (default: "
        f"expose.limits.header_timeout, {_LIMITS.header_timeout})",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=float,
        metavar="SECONDS",
        help="idle time a connection stays open between requests (default: "
        f"expose.limits.keep_alive_timeout, {_LIMITS.keep_alive_timeout})",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open connections, streams included; past it requests get 503 (default: "
        f"expose.limits.max_connections, {_LIMITS.max_connections})",
    )
    serve.add_argument(
        "--probe-port",
        type=int,
        metavar="PORT",
        help="serve /health and /ready also on this port, from a thread that never waits "
        "for the API (point orchestrator probes here; default: expose.probe_port, off)",
    )
    serve.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default="auto",
        help="text (readable tracebacks) or json lines, each with the request id; auto "
        "(default): text when stderr is a terminal, json otherwise",
    )
    serve.add_argument(
        "--no-run-agents",
        dest="run_agents",
        action="store_false",
        default=None,
        help="leave queued runs to `dockrion-runtime worker` processes: this server is an "
        "API only (default: streaming.redis.queue.run_agents)",
    )
    worker = commands.add_parser(
        "worker", help="run the agent on the runs of the Redis queue, serving no HTTP"
    )
    worker.add_argument("dockfile", nargs="?", default="Dockfile.yaml")
    worker.add_argument("--env-file", help="extra env file for ${VAR} substitution")
    worker.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    worker.add_argument("--log-format", choices=("auto", "json", "text"), default="auto")
    worker.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long the runs held may take to finish before they are handed "
        "back to the queue (default %(default)g)",
    )
    worker.add_argument(
        "--probe-port",
        type=int,
        metavar="PORT",
        help="serve /health and /ready on this port (default: expose.probe_port, off)",
    )
    worker.add_argument("--host", help="the probe port's address (default: expose.host)")
    return parser


def _positive(value: float | None, flag: str) -> str | None:
    if value is not None and value <= 0:
        return f"error: {flag} must be positive, got {value:g}"
    return None


def _probe_port_problem(probe_port: int, port: int, workers: int) -> str | None:
    if not 1 <= probe_port <= 65535:
        return f"error: --probe-port must be a port number (1-65535), got {probe_port}"
    if probe_port == port:
        return f"error: the probe port must differ from the API's port ({port})"
    if workers > 1:
        # Each worker is a process with its own loop and readiness; one port cannot speak
        # for all of them.
        return (
            f"error: a probe port serves one process, and --workers {workers} starts "
            f"{workers}: run one process per container (scale with replicas) or leave the "
            "probe port unset"
        )
    return None


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """A Dockfile's warnings as `warning: <text>` lines (no source line); others as usual."""
    for warning in caught:
        if issubclass(warning.category, DockfileWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return _work(args) if args.command == "worker" else _serve(args)
    except KeyboardInterrupt:
        # Ctrl+C: the server has shut down cleanly; the traceback would only alarm.
        return 130
    finally:
        # Called in-process (tests, an embedding program): later servers in this process
        # must not write their access lines to this run's stream.
        release_access_log()


def _load(args: argparse.Namespace) -> DockSpec | None:
    """The Dockfile, its warnings printed; None (the error printed) when it is invalid."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DockfileWarning)
        try:
            spec = load_dockspec(Path(args.dockfile), env_file=args.env_file)
        except DockfileError as error:
            print(str(error), file=sys.stderr)
            return None
    _print_warnings(caught)
    return spec


def _work(args: argparse.Namespace) -> int:
    spec = _load(args)
    if spec is None:
        return 1
    probe_port = args.probe_port if args.probe_port is not None else spec.expose.probe_port
    if probe_port is not None and not 1 <= probe_port <= 65535:
        problem = f"error: --probe-port must be a port number (1-65535), got {probe_port}"
        print(problem, file=sys.stderr)
        return 2
    plan = ServePlan(
        dockfile=str(Path(args.dockfile).resolve()),
        env_file=str(Path(args.env_file).resolve()) if args.env_file else None,
        host=args.host or spec.expose.host,
        port=0,
        log_level=args.log_level,
        log_format=args.log_format,
        grace_period=args.grace_period,
        probe_port=probe_port,
        run_agents=True,
    )
    return work(plan)


def _serve(args: argparse.Namespace) -> int:
    path = Path(args.dockfile)
    spec = _load(args)
    if spec is None:
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
    overrides = {
        "header_timeout": args.header_timeout,
        "keep_alive_timeout": args.keep_alive_timeout,
        "max_connections": args.max_connections,
    }
    for name, value in overrides.items():
        problem = _positive(value, "--" + name.replace("_", "-"))
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    host = args.host or spec.expose.host
    port = args.port if args.port is not None else spec.expose.port
    probe_port = args.probe_port if args.probe_port is not None else spec.expose.probe_port
    if probe_port is not None:
        problem = _probe_port_problem(probe_port, port, args.workers)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    plan = ServePlan(
        dockfile=str(path.resolve()),
        env_file=str(Path(args.env_file).resolve()) if args.env_file else None,
        host=host,
        port=port,
        log_level=args.log_level,
        log_format=args.log_format,
        grace_period=args.grace_period,
        workers=args.workers,
        reload=args.reload,
        probe_port=probe_port,
        run_agents=args.run_agents,
        server_limits={name: value for name, value in overrides.items() if value is not None},
    )
    return serve(plan)


if __name__ == "__main__":
    raise SystemExit(main())

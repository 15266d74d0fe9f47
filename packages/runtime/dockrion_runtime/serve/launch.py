"""How `serve` runs: in this process, in `--workers N` worker processes, or (`--reload`) in
a child process that is started again whenever a file beside the Dockfile changes.

Every process that serves runs the same server, `GracefulServer`, set up the same way:
the log format and level of the command line with the access log (`configure_logging`),
the app built from the Dockfile with its agent loaded, the server limits of the Dockfile
and the command line, the start-up lines, then the drain within `--grace-period` on
SIGTERM. The worker processes and the reloader's child are started, watched and stopped
by uvicorn's own supervisors (`Multiprocess`, `ChangeReload`), with `GracefulServer` as
what each of them runs. They are spawned, not forked: such a process has only what was
pickled for it, so it builds its app itself, through the factory its config names
(`process_app`), from the plan its parent left in the environment.

Before any process is spawned, the parent builds the app and loads the agent once, so
that a Dockfile, a secret, a probe port or an agent that cannot serve stops `serve` at
once, with the reason and the same exit status as a single process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from socket import socket
from typing import Any
from unittest import mock

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import ChangeReload, Multiprocess, multiprocess

from dockrion_schema import DockfileWarning

from ..agents import AgentLoadError
from ..app import create_app
from ..auth.base import AuthConfigError
from ..logs import configure_logging
from ..runtime import Runtime
from ..settings import SettingsError
from ..try_it import try_it_command
from .options import ServerOptions
from .server import GracefulServer, tune_gc, uvicorn_options

__all__ = ["PLAN_VARIABLE", "ServePlan", "StartupError", "process_app", "serve"]

# Where a spawned process finds its `ServePlan` (JSON).
PLAN_VARIABLE = "DOCKRION_SERVE_PLAN"
# The app factory the config of a spawned process names.
PROCESS_APP = f"{__name__}:process_app"
# What `--reload` watches beside the Dockfile; uvicorn watches more than `*.py` only when
# the watchfiles package is installed (its polling fallback reads `*.py` alone).
RELOAD_INCLUDES = ("*.py", "*.yaml", "*.yml", ".env")


class StartupError(Exception):
    """The app cannot serve; the message says why, for the terminal."""


@dataclass(frozen=True, slots=True)
class ServePlan:
    """What `serve` was asked to do, from the command line and the Dockfile: all a process
    needs to serve."""

    dockfile: str
    env_file: str | None
    host: str
    port: int
    log_level: str = "info"
    log_format: str = "json"
    grace_period: float = 30.0
    workers: int = 1
    reload: bool = False
    probe_port: int | None = None
    # False: `--no-run-agents`, queued runs are left to workers (None: the Dockfile says)
    run_agents: bool | None = None
    # `--header-timeout`, `--keep-alive-timeout` and `--max-connections` when given
    server_limits: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def spawns_workers(self) -> bool:
        return self.workers > 1 and not self.reload  # as uvicorn: reloading wins

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServePlan:
        return cls(**json.loads(text))

    def load(self) -> tuple[Starlette, dict[str, Any]]:
        """This process's app, ready to serve (the probe port taken, the agent loaded), and
        the uvicorn settings of its server limits. Raises `StartupError`."""
        try:
            probes = (self.host, self.probe_port) if self.probe_port is not None else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DockfileWarning)  # `serve` printed them once
                app = create_app(
                    self.dockfile,
                    env_file=self.env_file,
                    probe_address=probes,
                    run_agents=self.run_agents,
                )
        except (AuthConfigError, SettingsError) as error:
            raise StartupError(f"error: {error}") from error
        runtime: Runtime = app.state.runtime
        if runtime.missing_secrets:
            missing = ", ".join(runtime.missing_secrets)
            raise StartupError(
                f"error: MISSING_SECRET: missing required secrets: {missing}; set them in the "
                "environment or an env file beside the Dockfile (or give them a default)"
            )
        # The protocols read the limits of the app this process serves.
        options = uvicorn_options(
            ServerOptions.from_limits(runtime.settings.limits, **self.server_limits)
        )
        if runtime.probes is not None:
            try:
                runtime.probes.bind()  # a port in use is an error now, not at the first probe
            except OSError as error:
                message = (
                    f"error: cannot listen for probes on {self.host}:{self.probe_port}: {error}"
                )
                raise StartupError(message) from error
        try:
            # Fail here, with the reason, rather than at the first request.
            runtime.load_agent()
        except AgentLoadError as error:
            if runtime.probes is not None:
                runtime.probes.unbind()
            raise StartupError(f"error: cannot load the agent: {error}") from error
        return app, options

    def announce(self, runtime: Runtime) -> None:
        """The start-up lines: what is served where, a warning when anyone may call it,
        and a command that tries it."""
        spec = runtime.settings.spec
        if runtime.settings.auth_mode == "none" and not _loopback(self.host):
            sys.stderr.write(
                f"warning: listening on {self.host} with no auth: anyone who can reach this "
                "machine can call the agent. Add an 'auth:' section to the Dockfile, or listen "
                "on 127.0.0.1 only ('expose.host: 127.0.0.1' or --host 127.0.0.1).\n"
            )
        serving = f"Serving agent '{spec.agent.name}' at {self.url}"
        if self.spawns_workers:
            serving += f" (worker process {os.getpid()})"
        agent = runtime.require_agent()
        command = try_it_command(self.url, spec, agent.input_keys, os.environ)
        # One write: the lines of several workers do not interleave.
        sys.stdout.write(f"{serving}\nTry it:\n  {command}\n")
        sys.stdout.flush()

    def config(self, app: Any, options: dict[str, Any], **supervision: Any) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level=self.log_level,
            log_config=None,
            **options,
            **supervision,
        )


def serve(plan: ServePlan) -> int:
    """Serve `plan` until SIGTERM or SIGINT; the exit status."""
    try:
        app, options = plan.load()
    except StartupError as error:
        print(error, file=sys.stderr)
        return 1
    runtime: Runtime = app.state.runtime
    if not plan.reload and not plan.spawns_workers:
        plan.announce(runtime)
        tune_gc()
        GracefulServer(plan.config(app, options), plan.grace_period, runtime).run()
        return 0
    if runtime.probes is not None:
        runtime.probes.unbind()  # the serving process binds it again
    os.environ[PLAN_VARIABLE] = plan.to_json()
    try:
        return _supervise(plan, options)
    except KeyboardInterrupt:  # before the supervisor handles SIGINT itself, as `uvicorn.run`
        return 0
    finally:
        del os.environ[PLAN_VARIABLE]


def _loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def process_app() -> Starlette:
    """The app factory of a spawned process (a worker, the reloader's child): this process's
    logging and app, as `serve` sets them up in a single process, from the plan in the
    environment; exits with uvicorn's start-up failure status when the app cannot serve
    (the supervisor of workers then stops; the reloader waits for the next change)."""
    plan = ServePlan.from_json(os.environ[PLAN_VARIABLE])
    configure_logging(plan.log_level, plan.log_format)
    try:
        app, _ = plan.load()
    except StartupError as error:
        print(error, file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    plan.announce(app.state.runtime)
    tune_gc()
    return app


def _supervise(plan: ServePlan, options: dict[str, Any]) -> int:
    supervision: dict[str, Any] = {"factory": True, "workers": plan.workers}
    if plan.reload:
        watched = str(Path(plan.dockfile).parent)
        includes = list(RELOAD_INCLUDES) if find_spec("watchfiles") is not None else None
        supervision.update(workers=1, reload=True, reload_dirs=[watched], reload_includes=includes)
    config = plan.config(PROCESS_APP, options, **supervision)
    sockets = [config.bind_socket()]
    if plan.reload:
        server = GracefulServer(config, plan.grace_period)
        ChangeReload(config, target=server.run, sockets=sockets).run()
        return 0
    workers = _Workers(config, sockets, plan.grace_period)
    workers.run()
    failed = any(process.exitcode == STARTUP_FAILURE for process in workers.processes)
    return 1 if failed else 0


class _WorkerProcess(multiprocess.Process):
    """One of uvicorn's worker processes, serving with `GracefulServer` (built here, in the
    parent, and pickled with the process, so the health check reads the server that runs)."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket], grace: float) -> None:
        self._graceful = GracefulServer(config, grace)
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        return self._graceful


class _Workers(Multiprocess):
    """uvicorn's supervisor of worker processes (starts them, restarts one that dies or
    hangs, SIGHUP, SIGTTIN, SIGTTOU, SIGTERM to each on shutdown), whose workers serve with
    `GracefulServer`."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket], grace: float) -> None:
        super().__init__(config, sockets)
        self.grace = grace

    def run(self) -> None:
        # uvicorn makes every worker, at start-up and on each restart, from the name
        # `Process` of its module, with no hook: while this supervisor runs, it is ours.
        worker = partial(_WorkerProcess, grace=self.grace)
        with mock.patch.object(multiprocess, "Process", worker):
            super().run()

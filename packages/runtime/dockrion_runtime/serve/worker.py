"""`dockrion-runtime worker Dockfile.yaml`: a process that runs the agent on the runs of the
Redis backend's queue and serves no HTTP (`/health` and `/ready` on a probe port when
asked). API instances (`serve --no-run-agents`) and workers then scale apart.

On SIGTERM (or SIGINT) it stops taking runs, lets the runs it holds finish within the grace
period, then hands the rest back to the queue, where another worker continues them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from ..runtime import Runtime
from .launch import ServePlan, StartupError

__all__ = ["work"]

log = logging.getLogger("dockrion.runtime")


def work(plan: ServePlan) -> int:
    """Run queued runs until SIGTERM or SIGINT; the exit status."""
    try:
        app, _ = plan.load()
    except StartupError as error:
        print(error, file=sys.stderr)
        return 1
    runtime: Runtime = app.state.runtime
    settings = runtime.settings
    redis = settings.streaming.backend == "redis"
    if not (redis and settings.async_runs and settings.redis.queue.enabled):
        print(
            "error: a worker runs the runs of the Redis backend's queue: set "
            "'streaming: {backend: redis}' in the Dockfile (with streaming.async_runs and "
            "streaming.redis.queue.enabled left true)",
            file=sys.stderr,
        )
        if runtime.probes is not None:
            runtime.probes.unbind()
        return 2
    return asyncio.run(_work(app, runtime, plan.grace_period))


async def _work(app: Any, runtime: Runtime, grace: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with runtime.lifespan(app):
        if runtime.queue is None or runtime.agent is None:
            print(f"error: cannot run the agent: {runtime.load_error}", file=sys.stderr)
            return 1
        name = runtime.settings.name
        sys.stdout.write(f"Worker {os.getpid()} running agent '{name}' from the run queue\n")
        sys.stdout.flush()
        await stop.wait()
        log.info("stopping: no new runs; up to %gs for the runs held", grace)
        await runtime.drain(grace)
    return 0

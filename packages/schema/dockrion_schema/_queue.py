"""`streaming.redis.queue` of a Dockfile v1: background runs through a queue in Redis that
every instance shares, run by workers, taken over when their worker dies."""

from __future__ import annotations

from typing import Annotated

from ._fields import Between, _Section


class RunQueueConfig(_Section):
    # Background runs (`POST /runs`) go through a queue in Redis that every instance shares:
    # a worker takes each run, holds it while it runs, and a run whose worker died is taken
    # over by another worker. false: the instance that creates a run runs it, and a run whose
    # instance died ends `RUN_ORPHANED`.
    enabled: bool = True
    # `serve` runs agents from the queue itself (one process stays a whole deployment).
    # false: this `serve` is an API only, and `dockrion-runtime worker` processes run the
    # agents (`serve --no-run-agents` says the same).
    run_agents: bool = True
    # A run whose worker died runs again from its start on another worker: at least once, so
    # its agent may do part of its work twice (a tool call, a model call). Without it such a
    # run ends `RUN_ORPHANED`. A LangGraph graph on a thread whose checkpoints outlive the
    # process (`threads.checkpointer` sqlite or postgres) continues from its last checkpoint
    # instead, whatever this says.
    retry: bool = False
    # The most attempts at one run, the first included; past it the run ends `RUN_ORPHANED`
    # (an agent that brings its worker down each time stops there).
    max_attempts: Annotated[int, Between(1, 100)] = 3
    # Seconds a worker may go without renewing its hold on a run (it renews four times as
    # often) before another worker takes the run over as its worker's death.
    claim_after_seconds: Annotated[int, Between(1, 300)] = 3
    # The most runs one process runs at once; the others wait in the queue.
    max_runs_per_worker: Annotated[int, Between(1, 100_000)] = 100

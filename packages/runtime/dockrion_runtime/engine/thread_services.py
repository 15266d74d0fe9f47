"""The conversation threads of one app: the registry endpoints claim and read threads
through (turns and per-thread state on the events backend), the checkpointer the runtime
gives an agent that has none, what keeps that checkpointer's state (closed at shutdown),
and the retention that deletes threads past `threads.ttl_seconds`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from dockrion_events import RunManager

from ..agents import Agent, AgentLoadError
from ..agents.checkpointers import open_checkpointer
from ..settings import RuntimeSettings
from .conversations import ThreadRegistry
from .policies import SafetyPolicies
from .thread_records import ThreadRecords
from .thread_retention import ThreadRetention
from .thread_turns import ThreadTurns

__all__ = ["ThreadServices"]

log = logging.getLogger("dockrion.runtime")


class ThreadServices:
    """Built once with the app's `Runtime`; `runs` gives the run manager once the lifespan
    has brought it up."""

    def __init__(
        self,
        settings: RuntimeSettings,
        runs: Callable[[], RunManager | None],
        policies: SafetyPolicies,
    ) -> None:
        self.settings = settings
        self.registry = ThreadRegistry(
            ThreadTurns(
                settings.threads.multitask_strategy,
                float(settings.redis.lease_seconds),
                runs,
                lambda: self.records,
            ),
            settings.memory.max_threads,
            settings.threads.ttl_seconds,
        )
        ttl = settings.threads.ttl_seconds
        # what each thread keeps of its runs, where its ownership and turns live
        self.records = ThreadRecords(
            policies, float(ttl) if ttl is not None else None, lambda: self.registry.backend
        )
        # closes what keeps threads' state (a SQLite file, a PostgreSQL pool) at shutdown
        self.state = contextlib.AsyncExitStack()
        ttl = settings.threads.ttl_seconds
        self.retention = (
            ThreadRetention(float(ttl), lambda: self.registry.backend) if ttl is not None else None
        )

    async def keep(self, agent: Agent) -> None:
        """Give the agent the checkpointer of `threads` when it has none of its own
        (`AgentLoadError` when that fails: the agent is not served)."""
        config = self.settings.threads
        wants = agent.wants_checkpointer
        if wants:
            agent.use_checkpointer(
                await open_checkpointer(config, self.settings.base_dir, self.state)
            )
            if self.retention is not None:
                self.retention.start(agent)
                self.state.push_async_callback(self.retention.stop)
        elif config.ttl_seconds is not None:
            log.warning(
                "threads.ttl_seconds deletes the threads the runtime's checkpointer keeps; "
                "%s keeps its own threads, which it does not touch",
                agent.target,
            )
        if wants or config.checkpointer == "memory":
            pass
        elif agent.needs_thread:
            log.warning(
                "%s was compiled with its own checkpointer, which it keeps: "
                "threads.checkpointer %s is not used",
                agent.target,
                config.checkpointer,
            )
        else:
            raise AgentLoadError(
                f"threads.checkpointer {config.checkpointer} keeps the threads of LangGraph "
                f"graphs; {agent.target} is not one (use checkpointer: memory)"
            )

    async def close(self) -> None:
        await self.state.aclose()

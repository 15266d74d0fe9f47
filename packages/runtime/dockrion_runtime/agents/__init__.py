"""The user's agent: loaded from the Dockfile (`loader`), called without blocking the loop
(`base`, sync code on `worker_threads`), its streamed chunks turned into events (`chunks`),
and framework adapters (`langgraph_agent`, `langchain_agent`, with `text` for a message's
text). Imports run one way: loader -> adapters -> base -> chunks, text, worker_threads."""

from .base import (
    Agent,
    AgentLoadError,
    AgentResult,
    InvalidOutputError,
    RunOptions,
    ThreadState,
)
from .loader import import_target, load_agent
from .worker_threads import AgentThreads

__all__ = [
    "Agent",
    "AgentLoadError",
    "AgentResult",
    "AgentThreads",
    "InvalidOutputError",
    "RunOptions",
    "ThreadState",
    "import_target",
    "load_agent",
]

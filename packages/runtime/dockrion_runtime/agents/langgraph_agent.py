"""LangGraph graphs (`framework: langgraph`), streamed natively through our events.

The graph runs with `astream(..., subgraphs=True)`. What it streams becomes:
- `token`: text a chat model generates (LangGraph's `messages` mode), with the node that
  produced it; the last token of a model call carries the model's `finish_reason`.
  Messages that nodes return (tool results, human or hand-written AI messages) are not
  tokens.
- `tool_call` / `tool_result`: each tool call an AI message asks for (name, arguments,
  call id) and each tool message answering one (call id, name, content), once each, from
  the nodes' updates.
- `step`: a node finished (nodes of subgraphs are named `parent/child`).
- `progress`, `checkpoint`, `custom:<name>`: what nodes write with LangGraph's stream
  writer.
- the output: the last state of the root graph. When the graph stopped at `interrupt()`,
  the output carries LangGraph's own `__interrupt__` list (id and value of each), the run
  completes, and `POST /runs/{run_id}/resume` continues the thread.
Token usage that models report is summed into the run's metadata (`usage`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dockrion_events import EventsFilter, StreamContext, context_scope

from ..errors import RuntimeHTTPError
from .base import Agent, AgentResult, RunOptions, ThreadState
from .checkpointers import delete_checkpoints_since, threads_older_than
from .chunks import emit_chunk
from .text import finish_reason, message_text

__all__ = ["LangGraphAgent", "ToolNotAllowedError"]

log = logging.getLogger("dockrion.runtime")


# The checkpoint metadata key naming the run that saved a checkpoint.
RUN_METADATA = "dockrion_run_id"


class ToolNotAllowedError(RuntimeHTTPError):
    """A tool call the deployment's tool policy denies: the tool did not run."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Tool '{name}' is not allowed by policies.tools; it did not run",
            "POLICY_VIOLATION",
            {"tool": name},
        )


class LangGraphAgent(Agent):
    def __init__(self, graph: Any, *, target: str, events_filter: EventsFilter) -> None:
        super().__init__(graph.ainvoke, wants_context=False, target=target)
        self._graph = graph
        # the graph that runs on a thread: the graph itself when it has a checkpointer,
        # else a copy given the runtime's (`use_checkpointer`); runs without a thread keep
        # using the graph as compiled, so they store nothing
        self._threaded = graph if self.needs_thread else None
        self._checkpointer: Any = None  # the runtime's, when it gave the graph one
        modes = ["messages"] if events_filter.allows_tokens else []
        allowed = events_filter
        if allowed.allows_progress or allowed.allows_checkpoints or allowed.allows_any_custom:
            modes.append("custom")
        # updates: steps, tool calls and results, usage, interrupts; values: the output
        self._modes = [*modes, "updates", "values"]

    @property
    def input_keys(self) -> frozenset[str] | None:  # type: ignore[override]
        """The keys of a StateGraph's input state (LangGraph drops any other input key);
        None for graphs that declare none (the functional API takes its input whole)."""
        builder = getattr(self._graph, "builder", None)
        schemas = getattr(builder, "schemas", None)
        channels = schemas.get(getattr(builder, "input_schema", None)) if schemas else None
        return frozenset(channels) if isinstance(channels, dict) else None

    @property
    def needs_thread(self) -> bool:  # type: ignore[override]
        """A graph with a checkpointer refuses to run without a thread id."""
        return getattr(self._graph, "checkpointer", None) not in (None, False)

    @property
    def resumes_on_threads(self) -> bool:
        return self._threaded is not None

    @property
    def wants_checkpointer(self) -> bool:  # type: ignore[override]
        return self._threaded is None

    @property
    def continues_runs(self) -> bool:
        """With the runtime's checkpointer (`threads.checkpointer`)."""
        return self._checkpointer is not None

    def use_checkpointer(self, checkpointer: Any) -> None:
        """Keep threads with `checkpointer` (the graph was compiled without one)."""
        self._threaded = self._graph.copy(update={"checkpointer": checkpointer})
        self._checkpointer = checkpointer

    async def roll_back_thread(self, thread_id: str, since: float) -> None:
        checkpointer = getattr(self._threaded, "checkpointer", None)
        if checkpointer in (None, False, True):
            return
        if not await delete_checkpoints_since(checkpointer, thread_id, since):
            log.warning(
                "thread %s: rollback cannot remove checkpoints from a %s; the cancelled run's "
                "progress is kept",
                thread_id,
                type(checkpointer).__name__,
            )

    async def threads_older_than(self, cutoff: float) -> list[str]:
        checkpointer = self._checkpointer
        if checkpointer is None:
            return []  # the graph's own checkpointer: its retention is its own
        return await threads_older_than(checkpointer, cutoff) or []

    def thread_refusal(self) -> str | None:
        if self._threaded is None:
            return f"{self.target} keeps no threads: the runtime has no checkpointer for it"
        return None

    async def thread_state(self, thread_id: str) -> ThreadState | None:
        graph = self._threaded
        if graph is None:
            return None
        state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        if not getattr(state, "created_at", None):
            return None  # no checkpoint: the graph never ran on this thread
        updated = datetime.fromisoformat(state.created_at)
        return ThreadState(state.values, updated, bool(getattr(state, "interrupts", ())))

    def graph_drawing(self) -> dict[str, Any] | None:
        drawing: dict[str, Any] = self._graph.get_graph().to_json()
        return drawing

    async def thread_snapshots(self, thread_id: str, limit: int) -> list[Any]:
        graph = self._threaded
        if graph is None:
            return []
        config = {"configurable": {"thread_id": thread_id}}
        if limit == 1:
            state = await graph.aget_state(config)
            return [state] if getattr(state, "created_at", None) else []
        return [state async for state in graph.aget_state_history(config, limit=limit)]

    async def forget_thread(self, thread_id: str) -> None:
        checkpointer = getattr(self._threaded, "checkpointer", None)
        if checkpointer not in (None, False, True):
            await checkpointer.adelete_thread(thread_id)

    async def pending_interrupts(self, thread_id: str) -> set[str] | None:
        """From the thread's saved state: empty once its interrupt was answered."""
        graph = self._threaded or self._graph
        state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        return {str(item.id) for item in getattr(state, "interrupts", ())}

    def _config(self, options: RunOptions | None) -> dict[str, Any] | None:
        if options is None or options.thread_id is None:
            return None
        return {"configurable": {"thread_id": options.thread_id}}

    def _input(self, payload: Any, options: RunOptions | None) -> Any:
        if options is not None and options.resuming:
            from langgraph.types import Command

            return Command(resume=options.resume, update=options.update or None)
        return payload

    async def invoke(
        self,
        payload: Any,
        context: StreamContext | None,
        *,
        streaming: bool = True,
        options: RunOptions | None = None,
    ) -> Any:
        graph_input, config = self._input(payload, options), self._config(options)
        graph = self._graph if config is None else self._threaded or self._graph
        if config is not None and context is not None:
            # each checkpoint names its run: a later attempt knows whether it got that far
            config["metadata"] = {RUN_METADATA: context.run_id}
            if options is not None and options.continuing:
                graph_input = await _continued_input(graph, config, context.run_id, graph_input)
        config = _guard_tools(config, context)
        if context is None or not streaming:
            with context_scope(context):
                output = await graph.ainvoke(graph_input, config)
            return AgentResult(output, _interrupt_metadata(output))
        parts = options.stream_parts if options is not None else frozenset()
        translator = _Translator(context, payload, parts)
        with context_scope(context):
            async for namespace, mode, chunk in graph.astream(
                graph_input, config, stream_mode=self._modes, subgraphs=True
            ):
                await translator.feed(namespace, mode, chunk)
        return translator.result()


async def _continued_input(graph: Any, config: dict[str, Any], run_id: str, payload: Any) -> Any:
    """A new attempt at `run_id` after its worker died: None (go on from the thread's last
    checkpoint) once a checkpoint of this run was saved, else the run's input (the worker
    died before the graph saved anything of this run)."""
    state = await graph.aget_state(config)
    metadata = getattr(state, "metadata", None) or {}
    return None if metadata.get(RUN_METADATA) == run_id else payload


def _guard_tools(config: dict[str, Any] | None, context: StreamContext | None) -> Any:
    """The run's config with a callback that stops a tool the tool policy denies before
    it runs (the run then ends with an error event, code POLICY_VIOLATION)."""
    check = context.tool_check if context is not None else None
    if check is None:
        return config
    allowed: Callable[[str], bool] = check
    from langchain_core.callbacks import BaseCallbackHandler

    class ToolGuard(BaseCallbackHandler):
        raise_error = True  # LangChain swallows callback errors otherwise
        run_inline = True

        def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
            name = str((serialized or {}).get("name") or kwargs.get("name") or "")
            if not allowed(name):
                raise ToolNotAllowedError(name)

    config = dict(config or {})
    config["callbacks"] = [*(config.get("callbacks") or []), ToolGuard()]
    return config


class _Translator:
    """LangGraph's stream parts -> our events, for one run."""

    def __init__(self, context: StreamContext, payload: Any, parts: frozenset[str]) -> None:
        self.context = context
        self.message_ids = "messages" in parts
        self.updates = "updates" in parts
        self.values = "values" in parts
        self.state: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
        self.final: Any = None
        self.interrupts: list[Any] = []
        self.last_step = time.perf_counter()
        self.seen_calls: set[str] = set()
        self.seen_results: set[str] = set()
        self.seen_messages: set[str] = set()
        self.usage: dict[str, int] = {}

    async def feed(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        if mode == "messages":
            await self._message(chunk)
        elif mode == "updates":
            await self._updates(namespace, chunk or {})
        elif mode == "custom":
            await self._custom(chunk)
        elif mode == "values" and not namespace:
            self.final = chunk
            if self.values:
                await self.context.emit_state(chunk)

    async def _message(self, chunk: Any) -> None:
        message, metadata = chunk
        if getattr(message, "type", None) not in ("ai", "AIMessageChunk"):
            return  # tool, human and system messages are not model output
        # A chat model's output carries its LangSmith model metadata; an AI message that a
        # node returns (written by hand) does not.
        if type(message).__name__ != "AIMessageChunk" and "ls_model_type" not in metadata:
            return
        text = message_text(getattr(message, "content", ""))
        reason = finish_reason(message)  # on the last chunk, often one without text
        if text or reason:
            message_id = getattr(message, "id", None) if self.message_ids else None
            await self.context.emit_token(
                text, reason, node_name=metadata.get("langgraph_node"), message_id=message_id
            )

    async def _updates(self, namespace: tuple[str, ...], updates: dict[str, Any]) -> None:
        now = time.perf_counter()
        parents = [part.partition(":")[0] for part in namespace]
        for node, update in updates.items():
            if node == "__interrupt__":
                if not namespace:
                    self.interrupts.extend(update)
                continue
            if node.startswith("__"):
                continue  # LangGraph's own bookkeeping
            name = "/".join([*parents, node])
            for message in _messages(update):
                await self._message_in_update(message, name)
            output_keys = sorted(update) if isinstance(update, dict) else []
            await self.context.emit_step(
                name,
                duration_ms=round((now - self.last_step) * 1000),
                input_keys=sorted(self.state),
                output_keys=output_keys,
                update=update if self.updates else None,
            )
            if not namespace and isinstance(update, dict):
                self.state.update(update)
        self.last_step = now

    async def _message_in_update(self, message: Any, node: str) -> None:
        kind = getattr(message, "type", None)
        if kind == "ai":
            for call in getattr(message, "tool_calls", None) or []:
                call_id = str(call.get("id") or "")
                if call_id and call_id in self.seen_calls:
                    continue
                self.seen_calls.add(call_id)
                await self.context.emit_tool_call(
                    call.get("name", ""), call.get("args", {}), call_id or None, node_name=node
                )
            message_id = getattr(message, "id", None)
            usage = getattr(message, "usage_metadata", None)
            if usage and message_id not in self.seen_messages:
                for key in ("input_tokens", "output_tokens", "total_tokens"):
                    self.usage[key] = self.usage.get(key, 0) + int(usage.get(key, 0) or 0)
            if message_id:
                self.seen_messages.add(message_id)
        elif kind == "tool":
            call_id = str(getattr(message, "tool_call_id", "") or "")
            if call_id in self.seen_results:
                return
            self.seen_results.add(call_id)
            await self.context.emit_tool_result(
                call_id,
                getattr(message, "name", None),
                getattr(message, "content", ""),
                is_error=getattr(message, "status", "success") == "error",
                node_name=node,
            )

    async def _custom(self, chunk: Any) -> None:
        if isinstance(chunk, tuple) and len(chunk) == 2:  # (kind, fields) from LangGraphSink
            kind, fields = chunk
            chunk = {"type": kind, **fields} if isinstance(fields, dict) else chunk
        await emit_chunk(self.context, _custom_chunk(chunk), [])

    def result(self) -> AgentResult:
        output = self.final
        if self.interrupts:
            output = {
                **(output if isinstance(output, dict) else {}),
                "__interrupt__": self.interrupts,
            }
        metadata = _interrupt_metadata(output)
        if self.usage:
            metadata["usage"] = self.usage
        return AgentResult(output, metadata)


def _interrupt_metadata(output: Any) -> dict[str, Any]:
    if isinstance(output, dict) and output.get("__interrupt__"):
        return {"interrupted": True}
    return {}


def _messages(update: Any) -> list[Any]:
    if not isinstance(update, dict):
        return []
    messages = update.get("messages")
    if messages is None:
        return []
    return list(messages) if isinstance(messages, list | tuple) else [messages]


def _custom_chunk(chunk: Any) -> Any:
    """Writer data: built-in types keep theirs; any other `{"type": name, ...}` is
    `custom:<name>` with the remaining fields."""
    if isinstance(chunk, dict):
        kind = str(chunk.get("type", ""))
        if kind in ("token", "progress", "checkpoint", "step", "custom"):
            return chunk
        name = kind.removeprefix("custom:") or "update"
        data = {key: value for key, value in chunk.items() if key != "type"}
        return {"type": "custom", "event_type": name, "data": data}
    return {"type": "custom", "event_type": "update", "data": {"value": chunk}}

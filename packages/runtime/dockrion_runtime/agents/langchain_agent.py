"""LangChain runnables (`framework: langchain`): a chat model, an LCEL chain, an agent
executor. `/invoke` awaits `ainvoke`; a stream follows `astream_events`, so the tokens of
chat models called anywhere inside the runnable reach the client as they are generated,
tools it runs are `tool_call`/`tool_result` events, and the output is the runnable's own
result."""

from __future__ import annotations

from typing import Any

from dockrion_events import StreamContext, context_scope

from .base import Agent, RunOptions
from .text import finish_reason, message_text

__all__ = ["LangChainAgent"]


class LangChainAgent(Agent):
    def __init__(self, runnable: Any, *, target: str) -> None:
        super().__init__(runnable.ainvoke, wants_context=False, target=target)
        self._runnable = runnable

    async def invoke(
        self,
        payload: Any,
        context: StreamContext | None,
        *,
        streaming: bool = True,
        options: RunOptions | None = None,
    ) -> Any:
        thread = options.thread_id if options else None
        config = {"configurable": {"thread_id": thread}} if thread else None
        if context is None or not streaming:
            with context_scope(context):
                return await self._runnable.ainvoke(payload, config)
        output: Any = None
        with context_scope(context):
            async for event in self._runnable.astream_events(payload, config, version="v2"):
                kind = event["event"]
                if kind == "on_chat_model_stream":
                    chunk = event["data"].get("chunk")
                    text = message_text(getattr(chunk, "content", ""))
                    reason = finish_reason(chunk)
                    if text or reason:
                        await context.emit_token(text, reason)
                elif kind == "on_tool_start":
                    data = event["data"]
                    await context.emit_tool_call(
                        event["name"], data.get("input"), event.get("run_id")
                    )
                elif kind == "on_tool_end":
                    result = event["data"].get("output")
                    content = getattr(result, "content", result)
                    await context.emit_tool_result(event.get("run_id"), event["name"], content)
                elif kind.endswith("_end") and not event.get("parent_ids"):
                    output = event["data"].get("output")  # the runnable itself finished
        return output

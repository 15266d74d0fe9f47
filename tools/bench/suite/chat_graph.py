"""A LangGraph chat graph for the per-token cost benchmark (`token_cost.py`).

One `MessagesState` node, `chat`, calls a langchain-core `BaseChatModel` that streams
`"t<i> "` tokens without any network. The last human message says how many: `"n=2000"`
(default 1). The model yields to the event loop once per token, as a real client does on
each network read. `build()` is the entrypoint the Dockfile names.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

_COUNT = re.compile(r"\bn=(\d+)")
LIMIT = 1_000_000


def token_count(messages: list[BaseMessage]) -> int:
    for message in reversed(messages):
        if message.type == "human" and isinstance(message.content, str):
            found = _COUNT.search(message.content)
            return min(int(found.group(1)), LIMIT) if found else 1
    return 1


class CountingChat(BaseChatModel):
    """Streams `n` chunks `"t0 "`, `"t1 "`, ...; `_generate` answers all of them at once."""

    @property
    def _llm_type(self) -> str:
        return "counting-chat"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(f"t{i} " for i in range(token_count(messages)))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i in range(token_count(messages)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"t{i} "))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(token_count(messages)):
            await asyncio.sleep(0)  # one network read per chunk
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=f"t{i} "))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def build() -> Any:
    model = CountingChat()

    async def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    return graph.compile()

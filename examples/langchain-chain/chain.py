"""A LangChain chain (prompt | chat model | parser) served as is: no network, no key.

The chat model is a small real langchain-core chat model that streams its answer word by
word, so the tokens on the wire are the ones a hosted model would send through the same
chain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable


class BriefChatModel(BaseChatModel):
    """Answers in one sentence that repeats the question (streamed word by word)."""

    @property
    def _llm_type(self) -> str:
        return "brief-chat"

    def _answer(self, messages: list[BaseMessage]) -> str:
        return f"In short: {messages[-1].content} is worth a closer look."

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in re.findall(r"\S+\s*", self._answer(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = AIMessage(content=self._answer(messages))
        return ChatResult(generations=[ChatGeneration(message=answer)])


def build() -> Runnable[Any, str]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one sentence."), ("human", "{question}")]
    )
    return prompt | BriefChatModel() | StrOutputParser()

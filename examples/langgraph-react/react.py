"""A tool-calling LangGraph agent over `MessagesState` that needs no network and no key.

The chat model is scripted, but it is a real langchain-core chat model: it streams text
tokens and tool-call chunks the way provider models do (arguments arrive as JSON pieces),
reports token usage, and is driven by LangGraph exactly like a hosted model would be. The
graph keeps conversations in a checkpointer (threads), and `send_email` asks a human for
approval with `interrupt()` before it "sends".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt

WEATHER = {"paris": "18°C and sunny", "london": "12°C and raining", "tokyo": "22°C, clear"}


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return WEATHER.get(city.lower(), "unknown: no station there")


@tool
def send_email(to: str, body: str) -> str:
    """Send an email; a human must approve it first."""
    decision = interrupt({"action": "send_email", "to": to, "body": body, "question": "Send it?"})
    approved = decision.get("approved") if isinstance(decision, dict) else bool(decision)
    return f"email to {to} sent" if approved else f"email to {to} not sent: not approved"


class ScriptedChatModel(BaseChatModel):
    """Decides like a small ReAct model: a question about the weather or an email calls
    the tool; a tool result is turned into the answer; anything else is answered."""

    model_name: str = "scripted-react-1"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self  # the script knows its two tools

    def _plan(self, messages: list[BaseMessage]) -> tuple[str, list[dict[str, Any]]]:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return f"Here is what I found: {last.content}.", []
        text = str(last.content)
        lowered = text.lower()
        if "weather" in lowered:
            city = next((c for c in WEATHER if c in lowered), "paris")
            return "Let me check the weather.", [("get_weather", {"city": city.title()})]
        if "email" in lowered:
            address = re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
            to = address.group(0) if address else "team@example.com"
            return "I will draft that email.", [("send_email", {"to": to, "body": text})]
        return f"You said: {text}", []

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text, calls = self._plan(messages)
        turn = sum(isinstance(m, AIMessage) for m in messages)
        pieces: list[AIMessageChunk] = [
            AIMessageChunk(content=word) for word in re.findall(r"\S+\s*", text)
        ]
        for index, (name, args) in enumerate(calls):
            arguments = json.dumps(args)
            half = len(arguments) // 2
            call_id = f"call_{turn}_{index}"
            pieces.append(
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {"name": name, "args": arguments[:half], "id": call_id, "index": index}
                    ],
                )
            )
            pieces.append(
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {"name": None, "args": arguments[half:], "id": None, "index": index}
                    ],
                )
            )
        words = sum(len(str(m.content).split()) for m in messages)
        pieces[-1].usage_metadata = {
            "input_tokens": words,
            "output_tokens": len(text.split()),
            "total_tokens": words + len(text.split()),
        }
        # as a provider's last chunk says which model answered and why it stopped
        pieces[-1].response_metadata = {
            "model_name": self.model_name,
            "finish_reason": "tool_calls" if calls else "stop",
        }
        for piece in pieces:
            chunk = ChatGenerationChunk(message=piece)
            if run_manager is not None:
                run_manager.on_llm_new_token(str(piece.content), chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            merged = chunk.message if merged is None else merged + chunk.message  # type: ignore[assignment]
        assert merged is not None
        message = AIMessage(
            content=merged.content,
            tool_calls=merged.tool_calls,
            usage_metadata=merged.usage_metadata,
            response_metadata=merged.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


TOOLS: list[BaseTool] = [get_weather, send_email]


def build() -> Any:
    """The graph: agent -> tools -> agent ... until the model answers without a tool call."""
    model = ScriptedChatModel().bind_tools(TOOLS)

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(TOOLS))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())

"""A two-node LangGraph chat agent that needs no network and no API key: the model is
langchain-core's fake streaming chat model, so tokens stream exactly as a real LLM's would."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from dockrion_events import get_current_context


class Chat(TypedDict, total=False):
    query: str
    plan: str
    answer: str


def plan(state: Chat) -> dict[str, Any]:
    """First node: decide what to say; reports progress through LangGraph's stream writer."""
    writer = get_stream_writer()
    writer({"type": "progress", "step": "planning", "progress": 0.5, "message": "thinking"})
    return {"plan": f"Answer briefly: {state['query']}"}


async def respond(state: Chat) -> dict[str, Any]:
    """Second node: stream the model's answer token by token."""
    context = get_current_context()  # node code can emit through dockrion directly, too
    if context is not None:
        await context.emit("plan_used", plan=state["plan"])
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content=f"You asked: {state['query']}. Here is a short answer.")])
    )
    answer = ""
    async for chunk in model.astream(state["plan"]):
        answer += str(chunk.content)
    return {"answer": answer}


def build() -> Any:
    graph = StateGraph(Chat)
    graph.add_node("plan", plan)
    graph.add_node("respond", respond)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "respond")
    graph.add_edge("respond", END)
    return graph.compile()

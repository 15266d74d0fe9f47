"""LangChain runnables (`framework: langchain`): real langchain-core, no mocks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockrion_events import parse_sse
from dockrion_runtime import create_app

from .conftest import serve_app

pytest.importorskip("langchain_core")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain-chain" / "Dockfile.yaml"
ANSWER = "In short: qubits is worth a closer look."


def test_a_chain_answers_on_invoke_and_streams_its_model_tokens() -> None:
    with serve_app(create_app(EXAMPLE)) as url:
        answer = httpx.post(f"{url}/invoke", json={"question": "qubits"}, timeout=60)
        raw = httpx.post(f"{url}/invoke/stream", json={"question": "qubits"}, timeout=60).content
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == ANSWER
    events = [json.loads(m.data) for m in parse_sse(raw)]
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "complete"
    tokens = [e["content"] for e in events if e["type"] == "token"]
    assert len(tokens) > 1  # streamed from inside the chain, word by word
    assert "".join(tokens) == ANSWER == events[-1]["output"]


TOOLS = """
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

@tool
def shout(text: str) -> str:
    \"\"\"Upper-case the text.\"\"\"
    return text.upper()

def build():
    return RunnableLambda(lambda body: {"text": body["query"]}) | shout
"""


def test_tools_inside_a_runnable_are_events(serve: Callable[..., str]) -> None:
    url = serve("build", module=TOOLS, entrypoint=True, framework="langchain")
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "hi"}, timeout=60).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    call = next(e for e in events if e["type"] == "tool_call")
    result = next(e for e in events if e["type"] == "tool_result")
    assert (call["name"], call["arguments"]) == ("shout", {"text": "hi"})
    assert (result["call_id"], result["content"]) == (call["call_id"], "HI")
    assert events[-1]["output"] == "HI"


STOPPING_MODEL = """
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableLambda

class Model(BaseChatModel):
    @property
    def _llm_type(self):
        return "stopping"

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        yield ChatGenerationChunk(message=AIMessageChunk(content="Hello "))
        last = AIMessageChunk(content="there", response_metadata={"finish_reason": "length"})
        yield ChatGenerationChunk(message=last)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        raise NotImplementedError

def build():
    return RunnableLambda(lambda body: body["query"]) | Model()
"""


def test_the_last_token_carries_the_models_finish_reason(serve: Callable[..., str]) -> None:
    url = serve("build", module=STOPPING_MODEL, entrypoint=True, framework="langchain")
    raw = httpx.post(f"{url}/invoke/stream", json={"query": "hi"}, timeout=60).content
    events = [json.loads(m.data) for m in parse_sse(raw)]
    tokens = [e for e in events if e["type"] == "token"]
    assert [(t["content"], t["finish_reason"]) for t in tokens] == [
        ("Hello ", None),
        ("there", "length"),
    ]

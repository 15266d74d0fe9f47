"""What LangChain and LangGraph tell a run through their callbacks: each model call's model,
token usage and finish reason (metered, priced and checked against the caller's budgets),
and the spans of nodes, model calls and tool calls when the run is traced.

No adapter passes these callbacks: a context variable holds the run's handler and
langchain-core's configure hook adds it to every callback manager made inside the run (the
run's task, the tasks LangGraph starts for it, a sync agent's worker thread), so any
LangChain code an agent runs is seen, whatever the framework.
"""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

__all__ = ["RunObserver", "install", "run_handler"]

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler


class RunObserver(Protocol):
    """What the run's handler reports to (telemetry/observer.py's `RunWatch`)."""

    traced: bool

    def model_used(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        """Count one model call's tokens; returns its cost (raises when a budget is spent)."""

    def open_span(
        self, key: UUID, parent: UUID | None, name: str, attributes: dict[str, Any]
    ) -> None: ...

    def close_span(
        self, key: UUID, attributes: dict[str, Any], error: BaseException | None = None
    ) -> None: ...


_current: contextvars.ContextVar[Any] = contextvars.ContextVar("dockrion_run_handler", default=None)
_handler_class: type[BaseCallbackHandler] | None = None

# What LangGraph raises to pause or route a graph: control flow, not failures.
_CONTROL_FLOW = frozenset({"GraphInterrupt", "NodeInterrupt", "ParentCommand", "GraphBubbleUp"})


def install() -> bool:
    """Register the context variable with langchain-core, once; False without it. Only
    when the agent already imported it: importing it here would hold the event loop for
    as long as the import takes, for agents that never use it."""
    global _handler_class
    if _handler_class is None:
        if "langchain_core" not in sys.modules:
            return False
        try:
            from langchain_core.tracers.context import register_configure_hook
        except ImportError:
            return False
        _handler_class = _build_handler_class()
        register_configure_hook(_current, inheritable=True)
    return True


def run_handler(observer: RunObserver) -> contextvars.Token[Any] | None:
    """Make `observer` see the LangChain calls of the run in this context (None: no
    langchain-core here). Reset the token when the run ends."""
    if not install():
        return None
    assert _handler_class is not None
    return _current.set(_handler_class(observer))  # type: ignore[call-arg]


def reset(token: contextvars.Token[Any] | None) -> None:
    if token is not None:
        _current.reset(token)


def _model_name(metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str | None:
    params = kwargs.get("invocation_params") or {}
    for value in (
        (metadata or {}).get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _usage(response: Any) -> tuple[int, int, str | None, list[str]]:
    """(input tokens, output tokens, model, finish reasons) of an LLMResult."""
    input_tokens = output_tokens = 0
    model: str | None = None
    reasons: list[str] = []
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            message = getattr(generation, "message", None)
            usage = getattr(message, "usage_metadata", None) or {}
            input_tokens += int(usage.get("input_tokens", 0) or 0)
            output_tokens += int(usage.get("output_tokens", 0) or 0)
            metadata = getattr(message, "response_metadata", None) or {}
            info = getattr(generation, "generation_info", None) or {}
            model = model or metadata.get("model_name") or metadata.get("model")
            reason = (
                metadata.get("finish_reason")
                or metadata.get("stop_reason")
                or metadata.get("done_reason")
                or info.get("finish_reason")
            )
            if isinstance(reason, str) and reason:
                reasons.append(reason)
    if not input_tokens and not output_tokens:  # providers that report it per call only
        output = getattr(response, "llm_output", None) or {}
        usage = output.get("token_usage") or output.get("usage") or {}
        input_tokens = int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0)
        output_tokens = int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)
        model = model or output.get("model_name")
    return input_tokens, output_tokens, model if isinstance(model, str) else None, reasons


def _arguments(inputs: Any, text: str) -> str:
    """A tool call's arguments as JSON (the conventions' form), else as LangChain wrote them."""
    if isinstance(inputs, dict):
        try:
            return json.dumps(inputs, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return text


def _error_attributes(error: BaseException) -> tuple[dict[str, Any], BaseException | None]:
    if type(error).__name__ in _CONTROL_FLOW:
        return {"dockrion.interrupted": True}, None
    return {}, error


def _build_handler_class() -> type[BaseCallbackHandler]:
    from langchain_core.callbacks import BaseCallbackHandler

    class RunCallbacks(BaseCallbackHandler):
        """One run's handler: meters every model call; spans when the run is traced."""

        raise_error = True  # a spent budget stops the run from inside its model call
        run_inline = True  # called where the event happens, in order

        def __init__(self, observer: RunObserver) -> None:
            self.observer = observer
            self.traced = observer.traced
            self.models: dict[UUID, str | None] = {}

        # --- model calls ---------------------------------------------------------------

        def _model_start(
            self,
            run_id: UUID,
            parent_run_id: UUID | None,
            metadata: dict[str, Any] | None,
            kwargs: dict[str, Any],
            operation: str,
        ) -> None:
            model = _model_name(metadata, kwargs)
            self.models[run_id] = model
            if self.traced:
                attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
                provider = (metadata or {}).get("ls_provider")
                if provider:
                    attributes["gen_ai.provider.name"] = str(provider)
                if model:
                    attributes["gen_ai.request.model"] = model
                for name in ("temperature", "max_tokens", "top_p"):
                    value = (kwargs.get("invocation_params") or {}).get(name)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        attributes[f"gen_ai.request.{name}"] = value
                label = f"{operation} {model}" if model else operation
                self.observer.open_span(run_id, parent_run_id, label, attributes)

        def on_chat_model_start(
            self,
            serialized: dict[str, Any],
            messages: list[list[Any]],
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            self._model_start(run_id, parent_run_id, metadata, kwargs, "chat")

        def on_llm_start(
            self,
            serialized: dict[str, Any],
            prompts: list[str],
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            self._model_start(run_id, parent_run_id, metadata, kwargs, "text_completion")

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            input_tokens, output_tokens, model, reasons = _usage(response)
            model = model or self.models.get(run_id)
            self.models.pop(run_id, None)
            cost = 0.0
            try:  # a spent budget raises here; the model call itself went well
                cost = self.observer.model_used(model, input_tokens, output_tokens)
            finally:
                if self.traced:
                    attributes: dict[str, Any] = {
                        "gen_ai.usage.input_tokens": input_tokens,
                        "gen_ai.usage.output_tokens": output_tokens,
                    }
                    if model:
                        attributes["gen_ai.response.model"] = model
                    if reasons:
                        attributes["gen_ai.response.finish_reasons"] = reasons
                    if cost:
                        attributes["gen_ai.usage.cost"] = cost
                    self.observer.close_span(run_id, attributes)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self.models.pop(run_id, None)
            if self.traced:
                self.observer.close_span(run_id, {}, error)

        # --- LangGraph nodes (and the chains around them) -------------------------------

        def on_chain_start(
            self,
            serialized: dict[str, Any] | None,
            inputs: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if not self.traced:
                return
            node = (metadata or {}).get("langgraph_node")
            # a node's own chain, not the runnables inside it (which inherit its metadata)
            is_node = node is not None and kwargs.get("name") == node
            attributes: dict[str, Any] = {}
            if is_node:
                attributes = {
                    "langgraph.node": str(node),
                    "langgraph.step": int((metadata or {}).get("langgraph_step") or 0),
                }
            self.observer.open_span(
                run_id, parent_run_id, f"node {node}" if is_node else "", attributes
            )

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            if self.traced:
                self.observer.close_span(run_id, {})

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            if self.traced:
                self.observer.close_span(run_id, *_error_attributes(error))

        # --- tools ---------------------------------------------------------------------

        def on_tool_start(
            self,
            serialized: dict[str, Any],
            input_str: str,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            inputs: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if not self.traced:
                return
            name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.arguments": _arguments(inputs, input_str),
            }
            call_id = kwargs.get("tool_call_id")
            if call_id:
                attributes["gen_ai.tool.call.id"] = str(call_id)
            self.observer.open_span(run_id, parent_run_id, f"execute_tool {name}", attributes)

        def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
            if self.traced:
                content = getattr(output, "content", output)
                result = content if isinstance(content, str) else str(content)
                self.observer.close_span(run_id, {"gen_ai.tool.call.result": result})

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            if self.traced:
                self.observer.close_span(run_id, *_error_attributes(error))

    return RunCallbacks

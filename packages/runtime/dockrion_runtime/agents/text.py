"""The text of a LangChain message's content, whatever shape the provider gave it."""

from __future__ import annotations

from typing import Any

__all__ = ["finish_reason", "message_text"]

# Where providers put why a model stopped, in a message's `response_metadata`: OpenAI,
# Google and most others say `finish_reason`, Anthropic `stop_reason`, Ollama `done_reason`.
_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")


def message_text(content: Any) -> str:
    """A string content as is; a list of content blocks: the text of its text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""


def finish_reason(message: Any) -> str | None:
    """Why the model stopped, when this message (usually a stream's last chunk) says so."""
    metadata = getattr(message, "response_metadata", None)
    if not isinstance(metadata, dict):
        return None
    for key in _FINISH_KEYS:
        reason = metadata.get(key)
        if isinstance(reason, str) and reason:
            return reason
    return None

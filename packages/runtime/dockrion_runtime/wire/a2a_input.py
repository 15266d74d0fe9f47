"""A2A's side of the way in: JSON-RPC requests and errors, and an A2A `Message` as the
agent's input (`a2a.py` maps the other way, a run's log to A2A).

A message's text parts are joined into its text; its first data part that holds a JSON
object is its data. The agent's input is the data when there is some (checked against
`io_schema.input` like any other input), else the text: as a user message in `messages`
for a LangGraph graph, in `expose.a2a.message_field` for a handler agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ERROR_INFO",
    "RpcError",
    "RpcRequest",
    "UserMessage",
    "parse_message",
    "parse_request",
    "rpc_error",
]

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_MAX_ID = 128


class RpcError(Exception):
    """A JSON-RPC error answer: A2A's `code` (-32001 task not found, -32602 invalid
    params, ...) and the runtime's own code as the reason."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def rpc_error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": error.code,
            "message": error.message,
            "data": [
                {
                    "@type": ERROR_INFO,
                    "reason": error.reason,
                    "domain": "dockrion",
                    "metadata": {"code": error.reason},
                }
            ],
        },
    }


@dataclass(frozen=True, slots=True)
class RpcRequest:
    request_id: Any
    method: str
    params: dict[str, Any]


def parse_request(body: Any) -> RpcRequest:
    """A JSON-RPC 2.0 request object (no batches), else -32600."""
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        raise RpcError(-32600, "Not a JSON-RPC 2.0 request object", "VALIDATION_ERROR")
    request_id = body.get("id")
    valid_id = request_id is None or isinstance(request_id, int | str)
    if isinstance(request_id, bool) or not valid_id or len(str(request_id)) > _MAX_ID:
        raise RpcError(-32600, "'id' must be a string or an integer", "VALIDATION_ERROR")
    method = body.get("method")
    if not isinstance(method, str):
        raise RpcError(-32600, "'method' must be a string", "VALIDATION_ERROR")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(-32602, "'params' must be an object", "VALIDATION_ERROR")
    return RpcRequest(request_id, method, params)


@dataclass(frozen=True, slots=True)
class UserMessage:
    message_id: str
    context_id: str | None
    task_id: str | None
    text: str
    data: dict[str, Any] | None

    def payload(self, framework: str, message_field: str) -> Any:
        """The agent's input made from the message."""
        if self.data is not None:
            return self.data
        if framework == "langgraph":
            return {"messages": [{"role": "user", "content": self.text}]}
        return {message_field: self.text}

    def answer(self) -> Any:
        """What an interrupted graph waits for: the data, else the text."""
        return self.data if self.data is not None else self.text


def _invalid(message: str) -> RpcError:
    return RpcError(-32602, message, "VALIDATION_ERROR")


def _optional_id(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _MAX_ID:
        raise _invalid(f"message.{key} must be a string of at most {_MAX_ID} characters")
    return value


def parse_message(params: dict[str, Any]) -> UserMessage:
    """`params.message` of SendMessage and SendStreamingMessage, else -32602."""
    message = params.get("message")
    if not isinstance(message, dict):
        raise _invalid("params.message must be an A2A Message object")
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id or len(message_id) > _MAX_ID:
        raise _invalid("message.messageId must be a non-empty string")
    role = message.get("role", "ROLE_USER")
    if role not in ("ROLE_USER", "user"):
        raise _invalid("message.role must be ROLE_USER")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _invalid("message.parts must be a non-empty list")
    texts: list[str] = []
    data: dict[str, Any] | None = None
    for part in parts:
        if not isinstance(part, dict):
            raise _invalid("every message part must be an object")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif "data" in part:
            if data is None and isinstance(part["data"], dict):
                data = part["data"]
        else:
            raise _invalid("only text and data parts are accepted (no files or URLs)")
    if not texts and data is None:
        raise _invalid("the message needs a text part or a data part holding a JSON object")
    return UserMessage(
        message_id=message_id,
        context_id=_optional_id(message, "contextId"),
        task_id=_optional_id(message, "taskId"),
        text="\n".join(texts),
        data=data,
    )

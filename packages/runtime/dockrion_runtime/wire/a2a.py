"""A2A: a run's events as the Agent2Agent protocol's task, status updates and artifact
updates (A2A 1.0, the JSON form of its messages).

A task is a run (the task id is the run id) and its `contextId` is the run's thread.
`A2aTask` is fed the stored events of one run, in order, and keeps the task as it stands
after them; each event also gives the stream updates it makes:

- `started` -> status `TASK_STATE_WORKING`;
- `token` -> the `answer` artifact, appended chunk by chunk;
- `tool_call`, `tool_result`, `progress`, `step`, `checkpoint`, `custom:*` -> status
  `TASK_STATE_WORKING` with an agent message whose data part is the event's data (the
  message's metadata names the event);
- `complete` -> the `output` artifact (the output as a data part, or a text part for a
  string), then status `TASK_STATE_COMPLETED`; a run stopped at LangGraph interrupts ->
  status `TASK_STATE_INPUT_REQUIRED` with the interrupts as the message;
- `error` -> `TASK_STATE_FAILED`, `cancelled` -> `TASK_STATE_CANCELED`.

The translation is a pure function of the log: replaying it from the start gives the same
task and the same updates, which is what makes a resubscription exact. Everything comes
from the stored events, which the run's output policies have already redacted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["A2aTask", "agent_message", "jsonrpc_frame", "terminal_state"]

# Fields every stored event carries; what is left is the event's own data.
_BASE_FIELDS = ("id", "type", "run_id", "sequence", "timestamp")
_STATUS_EVENTS = ("tool_call", "tool_result", "progress", "step", "checkpoint")
ANSWER = "answer"
OUTPUT = "output"
_TERMINAL = (
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
)
# A run's status (`GET /runs/{id}`) as a task state, for a run whose log is gone.
RUN_STATES = {
    "ACCEPTED": "TASK_STATE_SUBMITTED",
    "RUNNING": "TASK_STATE_WORKING",
    "COMPLETED": "TASK_STATE_COMPLETED",
    "FAILED": "TASK_STATE_FAILED",
    "CANCELLED": "TASK_STATE_CANCELED",
}


def terminal_state(state: str) -> bool:
    """Whether a task in `state` has stopped: its run ended (an interrupted run waits for
    a follow-up message, which starts the next run of its context)."""
    return state in _TERMINAL


def agent_message(
    message_id: str, task_id: str, context_id: str, parts: list[dict[str, Any]], **meta: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "messageId": message_id,
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": parts,
    }
    if meta:
        message["metadata"] = meta
    return message


def jsonrpc_frame(request_id: Any, result: dict[str, Any]) -> str:
    """One JSON-RPC response carrying `result`, as the data of an SSE event."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "result": result},
        separators=(",", ":"),
        ensure_ascii=False,
    )


class A2aTask:
    """The A2A task of one run, fed its stored events in order."""

    def __init__(
        self,
        *,
        task_id: str,
        context_id: str,
        framework: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.task_id = task_id
        self.context_id = context_id
        self.framework = framework
        self.state = "TASK_STATE_SUBMITTED"
        self._status: dict[str, Any] = {"state": self.state}
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._metadata = metadata or {}

    def snapshot(self) -> dict[str, Any]:
        """The task as it stands: id, context, status, artifacts (a copy)."""
        task: dict[str, Any] = {
            "id": self.task_id,
            "contextId": self.context_id,
            "status": copy.deepcopy(self._status),
            "artifacts": copy.deepcopy(list(self._artifacts.values())),
        }
        if self._metadata:
            task["metadata"] = self._metadata
        return task

    def set_state(self, state: str, message: str | None = None) -> None:
        """The state from the run's status, for a run whose log can no longer be read."""
        self.state = state
        self._status = {"state": state}
        if message:
            self._status["message"] = agent_message(
                f"{self.task_id}-status", self.task_id, self.context_id, [{"text": message}]
            )

    def feed(self, sequence: int, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream updates (`StreamResponse` objects) stored event `sequence` makes,
        applied to the task."""
        fields = {key: value for key, value in data.items() if key not in _BASE_FIELDS}
        timestamp = data.get("timestamp")
        stamp = timestamp if isinstance(timestamp, str) else None
        if kind == "started":
            return [self._status_update("TASK_STATE_WORKING", stamp, None)]
        if kind == "token":
            return [self._append(ANSWER, {"text": str(fields.get("content") or "")})]
        if kind in _STATUS_EVENTS or kind.startswith("custom:"):
            message = agent_message(
                f"{self.task_id}-{sequence}",
                self.task_id,
                self.context_id,
                [{"data": fields}],
                dockrion={"event": kind, "sequence": sequence},
            )
            return [self._status_update("TASK_STATE_WORKING", stamp, message)]
        if kind == "complete":
            return self._complete(fields, sequence, stamp)
        if kind == "error":
            text = str(fields.get("error") or "the run failed")
            message = agent_message(
                f"{self.task_id}-{sequence}",
                self.task_id,
                self.context_id,
                [{"text": text}],
                dockrion={"event": kind, "code": fields.get("code")},
            )
            return [self._status_update("TASK_STATE_FAILED", stamp, message)]
        if kind == "cancelled":
            reason = str(fields.get("reason") or "cancelled")
            message = agent_message(
                f"{self.task_id}-{sequence}",
                self.task_id,
                self.context_id,
                [{"text": reason}],
                dockrion={"event": kind},
            )
            return [self._status_update("TASK_STATE_CANCELED", stamp, message)]
        return []  # heartbeats and events of no meaning to A2A

    def _status_update(
        self, state: str, stamp: str | None, message: dict[str, Any] | None
    ) -> dict[str, Any]:
        self.state = state
        status: dict[str, Any] = {"state": state}
        if message is not None:
            status["message"] = message
        if stamp is not None:
            status["timestamp"] = stamp
        self._status = status
        update = {"taskId": self.task_id, "contextId": self.context_id, "status": status}
        return {"statusUpdate": copy.deepcopy(update)}

    def _append(self, artifact_id: str, part: dict[str, Any], last: bool = False) -> dict[str, Any]:
        stored = self._artifacts.get(artifact_id)
        append = stored is not None
        if stored is None:
            stored = {"artifactId": artifact_id, "name": artifact_id, "parts": []}
            self._artifacts[artifact_id] = stored
        parts = stored["parts"]
        if append and "text" in part and parts and "text" in parts[-1]:
            parts[-1] = {"text": parts[-1]["text"] + part["text"]}  # the task keeps one text
        else:
            parts.append(dict(part))
        artifact = {"artifactId": artifact_id, "name": artifact_id, "parts": [part]}
        update: dict[str, Any] = {
            "taskId": self.task_id,
            "contextId": self.context_id,
            "artifact": artifact,
            "append": append,
            "lastChunk": last,
        }
        return {"artifactUpdate": update}

    def _complete(
        self, fields: dict[str, Any], sequence: int, stamp: str | None
    ) -> list[dict[str, Any]]:
        output = fields.get("output")
        state = output if isinstance(output, dict) else None
        interrupts = state.get("__interrupt__") if state is not None else None
        if interrupts:
            parts: list[dict[str, Any]] = []
            for item in interrupts:
                value = item.get("value") if isinstance(item, dict) else item
                question = value.get("question") if isinstance(value, dict) else value
                if isinstance(question, str):
                    parts.append({"text": question})
            parts.append({"data": {"interrupts": interrupts}})
            message = agent_message(
                f"{self.task_id}-{sequence}",
                self.task_id,
                self.context_id,
                parts,
                dockrion={"event": "interrupt"},
            )
            return [self._status_update("TASK_STATE_INPUT_REQUIRED", stamp, message)]
        updates: list[dict[str, Any]] = []
        if self.framework == "langgraph":
            # A graph's output is its state; its answer is the last AI message's text.
            text = _last_ai_text(state)
            if text is not None and ANSWER not in self._artifacts:
                updates.append(self._append(OUTPUT, {"text": text}, last=True))
        elif isinstance(output, str):
            updates.append(self._append(OUTPUT, {"text": output}, last=True))
        elif output is not None:
            updates.append(self._append(OUTPUT, {"data": output}, last=True))
        updates.append(self._status_update("TASK_STATE_COMPLETED", stamp, None))
        return updates


def _last_ai_text(state: dict[str, Any] | None) -> str | None:
    messages = state.get("messages") if state is not None else None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("type") == "ai":
            content = message.get("content")
            return content if isinstance(content, str) and content else None
    return None

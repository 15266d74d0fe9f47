"""Runs: their status, their record, and the rules for run ids."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from .errors import InvalidRunIdError

__all__ = [
    "RUN_ID_PATTERN",
    "Run",
    "RunStatus",
    "generate_run_id",
    "validate_run_id",
]

# Anchored for JSON Schema readers (OpenAPI); checked with fullmatch, as `$` alone also
# matches before a trailing newline.
RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$")


class RunStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


def generate_run_id() -> str:
    return str(uuid.uuid4())


def validate_run_id(run_id: str) -> str:
    """Returns the id, or raises `InvalidRunIdError` saying which rule it breaks."""
    if not run_id:
        raise InvalidRunIdError("Run id cannot be empty")
    if len(run_id) > 128:
        raise InvalidRunIdError("Run id must be 128 characters or less")
    if run_id.startswith("_"):
        raise InvalidRunIdError("Run id cannot start with underscore (reserved)")
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidRunIdError(
            f"Invalid run id {run_id[:40]!r}: use only letters, digits, hyphens and "
            "underscores, starting with a letter or digit"
        )
    return run_id


def _now() -> datetime:
    return datetime.now(UTC)


class Run(BaseModel):
    """The state of a run, kept beside its event log and changed only atomically."""

    run_id: str
    status: RunStatus = RunStatus.ACCEPTED
    created_at: datetime = Field(default_factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    owner: str | None = None
    agent_name: str | None = None
    framework: str | None = None
    last_sequence: int = -1
    # Which attempt at the run this is: a worker that took over the run of a worker that died
    # starts the next one (the queue of the Redis backend).
    attempt: int = 1

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def to_response(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "output": self.output,
            "error": self.error,
            "metadata": self.metadata,
            "last_sequence": self.last_sequence,
            "attempt": self.attempt,
        }

"""The `threads` section of a Dockfile v1: where conversation threads keep their state (the
checkpointer the runtime gives a LangGraph graph compiled without one) and what a run sent
to a busy thread does."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ._fields import Between, _Section


class ThreadsConfig(_Section):
    # Where threads keep their state: `memory` (this process only, gone on restart),
    # `sqlite` (a file on this machine, survives restarts: needs the `sqlite` extra) or
    # `postgres` (shared by every instance: needs the `postgres` extra).
    checkpointer: Literal["memory", "sqlite", "postgres"] = "memory"
    # The SQLite file (`checkpointer: sqlite`), relative to the Dockfile's folder.
    path: Annotated[str | None, Field(min_length=1)] = None
    # The PostgreSQL URL (`checkpointer: postgres`), from the environment: `${DATABASE_URL}`.
    url: Annotated[str | None, Field(min_length=1)] = None
    # Connections to PostgreSQL kept open (`checkpointer: postgres`); each is checked before
    # use, so a restarted PostgreSQL costs no request.
    pool_size: Annotated[int, Between(1, 1000)] = 10

    # A run sent to a thread that is running one: `enqueue` (accepted; it starts when the
    # thread is free, in the order the runs arrived), `reject` (409 THREAD_BUSY),
    # `interrupt` (the thread's runs are cancelled, their progress kept, and the new one
    # starts) or `rollback` (cancelled, and the checkpoints written since they began are
    # removed). A request's `?multitask_strategy=` overrides it.
    multitask_strategy: Literal["enqueue", "reject", "interrupt", "rollback"] = "enqueue"

    # Retention: a thread untouched (no new checkpoint) for this many seconds is deleted with
    # its checkpoints and its ownership, so storage does not grow without bound. Unset:
    # threads are kept until deleted (DELETE /threads/{thread_id}).
    ttl_seconds: Annotated[int, Between(1, 315_360_000)] | None = None

    @model_validator(mode="after")
    def _where_state_lives(self) -> ThreadsConfig:
        if self.checkpointer == "sqlite" and not self.path:
            raise ValueError("checkpointer 'sqlite' needs 'path': the SQLite file, e.g. threads.db")
        if self.checkpointer == "postgres" and not self.url:
            raise ValueError(
                "checkpointer 'postgres' needs 'url': the PostgreSQL URL, e.g. ${DATABASE_URL}"
            )
        if self.path is not None and self.checkpointer != "sqlite":
            raise ValueError("'path' is the SQLite file: it needs checkpointer 'sqlite'")
        if self.url is not None and self.checkpointer != "postgres":
            raise ValueError("'url' is the PostgreSQL URL: it needs checkpointer 'postgres'")
        if "pool_size" in self.model_fields_set and self.checkpointer != "postgres":
            raise ValueError(
                "'pool_size' sizes the PostgreSQL pool: it needs checkpointer 'postgres'"
            )
        return self

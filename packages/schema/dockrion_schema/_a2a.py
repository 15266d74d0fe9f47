"""The `expose.a2a` section of a Dockfile v1: the agent served to other agents over the
Agent2Agent protocol (A2A)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ._fields import _Section

__all__ = ["A2aConfig"]


class A2aConfig(_Section):
    """`GET /.well-known/agent-card.json` and `POST /a2a`: the agent served over A2A's
    JSON-RPC binding to other agents (needs background runs, `streaming.async_runs`)."""

    enabled: bool = False
    # Handler agents (framework custom): the input field that receives the text of the
    # message when it carries no JSON object (a data part); a LangGraph graph gets the
    # message as a user message in `messages`.
    message_field: Annotated[str, Field(min_length=1, max_length=64)] = "message"
    # Tags of the agent's one skill on the agent card (what the agent is good at).
    tags: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=32)
    ] = Field(default_factory=list)

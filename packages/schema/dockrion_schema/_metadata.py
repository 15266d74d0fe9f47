"""The `metadata` section of a Dockfile v1: who maintains the agent, its version and
tags."""

from __future__ import annotations

from pydantic import Field

from ._fields import _Section

__all__ = ["Metadata"]


class Metadata(_Section):
    maintainer: str | None = None
    version: str | None = None
    tags: list[str] = Field(default_factory=list)

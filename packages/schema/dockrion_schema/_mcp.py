"""The `expose.mcp` section of a Dockfile v1: the agent served as one tool over the Model
Context Protocol's Streamable HTTP transport."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ._fields import _Section

__all__ = ["McpConfig"]

# A path of its own: a slash, then letters, digits, `-`, `_` and more slashes.
MCP_PATH_PATTERN = r"^/[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$"


class McpConfig(_Section):
    """The agent as one MCP tool at `path` (Streamable HTTP: `POST`, `GET` to resume a
    stream by `Last-Event-ID`, `DELETE` to end a session). Needs `dockrion-runtime[mcp]`
    and background runs (`streaming.async_runs`): a tool call is a run, and its stream
    resumes from the run's log."""

    enabled: bool = False
    # Where the MCP endpoint is served; it must not be a path of another endpoint.
    path: Annotated[str, Field(min_length=2, max_length=64, pattern=MCP_PATH_PATTERN)] = "/mcp"

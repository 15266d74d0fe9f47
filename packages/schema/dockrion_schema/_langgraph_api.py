"""`expose.langgraph_api`: the LangGraph Server API (assistants, threads, runs) served under
a path prefix, for LangGraph's own clients (`langgraph-sdk`, `@langchain/langgraph-sdk`
and its `useStream`, agent-chat-ui)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from ._fields import _Section

__all__ = ["LangGraphApiConfig"]

_PREFIX_RE = re.compile(r"^(/[a-z0-9][a-z0-9_-]*)+$")
# The runtime's own roots: a prefix that starts like one would shadow its routes.
_TAKEN = (
    "invoke",
    "runs",
    "threads",
    "ag-ui",
    "docs",
    "openapi.json",
    "health",
    "ready",
    "info",
    "schema",
    "metrics",
    "playground",
)


def _prefix(value: str) -> str:
    if not _PREFIX_RE.fullmatch(value):
        raise ValueError(
            f"prefix must be a path such as /lg: lowercase letters, digits, '_' or '-' in "
            f"segments that each start with '/', no trailing '/', got {value!r}"
        )
    first = value.split("/")[1]
    if first in _TAKEN:
        raise ValueError(
            f"prefix {value!r} begins with /{first}, a path of the runtime's own API; "
            "choose another (the default is /lg)"
        )
    return value


class LangGraphApiConfig(_Section):
    """The LangGraph Server API under `prefix` (the clients take a base URL with a path,
    such as `http://host:8080/lg`); Dockrion's own `/runs` and `/threads` keep their
    meaning. Needs background runs (`streaming.async_runs`)."""

    enabled: bool = False
    # Where the API is served: clients use `http://<host>:<port><prefix>` as their URL.
    prefix: Annotated[str, Field(max_length=64), AfterValidator(_prefix)] = "/lg"

"""What each endpoint does, as OpenAPI operations: its summary, parameters, request body
and every response it can give, one module per endpoint family. `openapi/document.py` puts
the ones the route table serves into the document, with the models and the security
schemes.
"""

from __future__ import annotations

from typing import Any

from dockrion_schema import DockSpec

from .ag_ui import ag_ui_operations
from .invoke import invoke_operations
from .mcp import mcp_operations
from .runs import run_operations
from .service import service_operations
from .threads import thread_operations

__all__ = ["endpoint_operations"]


def endpoint_operations(spec: DockSpec, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation the runtime can serve, by `(method, path)`; `prefix` begins the names
    of the agent's input and output models."""
    return {
        **service_operations(),
        **invoke_operations(spec, prefix),
        **run_operations(spec, prefix),
        **thread_operations(),
        **ag_ui_operations(),
        **mcp_operations(spec),
    }

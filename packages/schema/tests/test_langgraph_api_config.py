"""`expose.langgraph_api`: off by default, served under /lg unless the Dockfile says
another prefix, and a prefix that would shadow the runtime's own routes is refused."""

from __future__ import annotations

import pytest

from dockrion_schema import DockSpec, LangGraphApiConfig, ValidationError

BASE = {"version": "1.0", "agent": {"name": "a", "handler": "m:f"}, "io_schema": {}}


def spec(**langgraph_api: object) -> DockSpec:
    return DockSpec.model_validate({**BASE, "expose": {"langgraph_api": langgraph_api}})


def test_off_by_default_and_under_lg() -> None:
    assert LangGraphApiConfig() == LangGraphApiConfig(enabled=False, prefix="/lg")
    assert spec(enabled=True).expose.langgraph_api == LangGraphApiConfig(enabled=True)
    assert spec(enabled=True, prefix="/api/lg-v1").expose.langgraph_api.prefix == "/api/lg-v1"


@pytest.mark.parametrize("prefix", ["lg", "/lg/", "/", "/LG", "/runs", "/threads/lg", "/a b"])
def test_a_prefix_that_is_no_path_or_shadows_a_route_is_refused(prefix: str) -> None:
    with pytest.raises((ValidationError, ValueError)) as refused:
        spec(enabled=True, prefix=prefix)
    assert "prefix" in str(refused.value)

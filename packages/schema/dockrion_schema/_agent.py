"""The `agent` section of a Dockfile v1: the agent's name and where its code is (an
entrypoint, a handler or a factory)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from ._fields import AGENT_NAME_RE, _Section, _target

__all__ = ["AgentConfig"]


def _agent_name(value: str) -> str:
    if not AGENT_NAME_RE.match(value):
        raise ValueError(
            "must start with a lowercase letter and use only lowercase letters, digits and "
            f"hyphens, at most 63 characters, not ending with a hyphen; got {value!r}"
        )
    return value


class AgentConfig(_Section):
    name: Annotated[
        str,
        AfterValidator(_agent_name),
        Field(json_schema_extra={"pattern": AGENT_NAME_RE.pattern}),
    ]
    entrypoint: Annotated[str | None, AfterValidator(_target("factory or agent object"))] = None
    handler: Annotated[str | None, AfterValidator(_target("handler"))] = None
    framework: Literal["langgraph", "langchain", "custom"] | None = None
    description: str | None = None

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {"required": ["handler"], "properties": {"handler": {"type": "string"}}},
                {
                    "required": ["entrypoint", "framework"],
                    "properties": {
                        "entrypoint": {"type": "string"},
                        "framework": {"type": "string"},
                    },
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _mode(self) -> AgentConfig:
        if self.handler is None and self.entrypoint is None:
            raise ValueError(
                "needs 'handler' (a callable called per request) or 'entrypoint' "
                "(a factory called once) in the form 'module:callable'"
            )
        if self.handler is None and self.framework is None:
            raise ValueError(
                "entrypoint mode needs 'framework' (one of: langgraph, langchain, custom)"
            )
        if self.handler is not None and self.framework is None:
            self.framework = "custom"
        return self

    @property
    def mode(self) -> Literal["handler", "entrypoint"]:
        return "handler" if self.handler is not None else "entrypoint"

    @property
    def target(self) -> str:
        target = self.handler if self.handler is not None else self.entrypoint
        assert target is not None  # guaranteed by _mode
        return target

"""The `secrets` section of a Dockfile v1: the environment variables an agent needs, and
which of them are required."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ._fields import SECRET_NAME_RE, _Section

__all__ = ["SecretDefinition", "SecretsConfig"]


def _secret_name(value: str) -> str:
    if not SECRET_NAME_RE.match(value):
        raise ValueError(
            f"must be an environment variable name in UPPER_SNAKE_CASE "
            f"(^[A-Z_][A-Z0-9_]*$), got {value!r}"
        )
    return value


class SecretDefinition(_Section):
    name: Annotated[
        str,
        AfterValidator(_secret_name),
        Field(json_schema_extra={"pattern": SECRET_NAME_RE.pattern}),
    ]
    description: str | None = None
    default: str | None = None


class SecretsConfig(_Section):
    required: list[SecretDefinition] = Field(default_factory=list)
    optional: list[SecretDefinition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SecretsConfig:
        seen: set[str] = set()
        duplicates: list[str] = []
        for secret in [*self.required, *self.optional]:
            if secret.name in seen and secret.name not in duplicates:
                duplicates.append(secret.name)
            seen.add(secret.name)
        if duplicates:
            raise ValueError(
                f"secret names must be unique; declared twice: {', '.join(duplicates)}"
            )
        return self

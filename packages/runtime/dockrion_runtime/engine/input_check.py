"""`policies.safety`'s input check on a request body: a body that looks like a prompt
injection is refused with POLICY_VIOLATION before any run is created, so the agent never
sees it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockrion_schema import IOSubSchema

from ..request.body import BodyReader
from .policies import SafetyPolicies

__all__ = ["CheckedBodyReader"]


class CheckedBodyReader(BodyReader):
    """`BodyReader` (size, time, JSON, `io_schema.input`), then the input policy."""

    def __init__(
        self,
        schema: IOSubSchema | None,
        max_bytes: int,
        *,
        policies: SafetyPolicies,
        max_depth: int = 64,
        timeout: float | None = None,
    ) -> None:
        super().__init__(schema, max_bytes, max_depth=max_depth, timeout=timeout)
        self.policies = policies

    async def read(self, request: Request, *, check: bool = True) -> Any:
        payload = await super().read(request, check=check)
        self.policies.check_input(payload)
        return payload

    def message(self, data: bytes, *, check: bool = True) -> Any:
        payload = super().message(data, check=check)
        self.policies.check_input(payload)
        return payload

"""Who started a run, as agent code sees it: `context.auth`.

>>> def handle(payload, context):
...     if not context.auth.has_role("admin"):
...         return {"answer": f"hello {context.auth.name or 'guest'}"}

Built by the server from the caller's API key or token claims; it never holds the key or
the token itself. A plain value: importing it brings in nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["AuthContext"]


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The authenticated caller of a run; `AuthContext()` is the anonymous one.

    `method` is `none`, `api_key`, `jwt` or `oauth2`; `principal_id` is what owns the
    caller's runs (`api_key:<key id>`, `jwt:<subject>`, `oauth2:<subject>`); `claims` are
    the token's claims (JWT) or the introspection answer (OAuth 2), empty for API keys.
    """

    method: str = "none"
    principal_id: str | None = None
    key_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tenant_id: str | None = None
    client_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def authenticated(self) -> bool:
        return self.method != "none"

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

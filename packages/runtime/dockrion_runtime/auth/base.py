"""What every way of authenticating shares: the principal (who is calling), the
`Authenticator` interface, the bearer token of a request, the roles and permissions of
`auth.roles` (`Access`), and `authorize`, the one check HTTP routes (`protect`) and
WebSocket handshakes both make before anything else of a request is read.

Keys and tokens are never logged, and never reach agent code: agents get an `AuthContext`
built from the principal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from dockrion_events import AuthContext
from dockrion_schema import PERMISSIONS, AuthConfig

from ..errors import AuthFailed, Refused

__all__ = [
    "ANONYMOUS",
    "Access",
    "AuthConfigError",
    "AuthFailed",
    "Authenticator",
    "Limiter",
    "Principal",
    "Refused",
    "authorize",
    "bearer_token",
    "principal_of",
    "protect",
]


class AuthConfigError(Exception):
    """The Dockfile's auth section cannot work as configured (raised at start-up)."""

    code = "AUTH_CONFIG_ERROR"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `id` decides run ownership; `permissions` are the ones in
    effect (every permission when no roles are configured)."""

    id: str | None
    method: str = "none"
    key_id: str | None = None
    claims: dict[str, object] = field(default_factory=dict)
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tenant_id: str | None = None
    client_id: str | None = None

    # What agent code sees of the caller (no key, no token): built once per principal, and
    # the anonymous caller and each API key are one principal each.
    auth_context: AuthContext = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        context = AuthContext(
            method=self.method,
            principal_id=self.id,
            key_id=self.key_id,
            user_id=self.user_id,
            email=self.email,
            name=self.name,
            roles=self.roles,
            permissions=self.permissions,
            scopes=self.scopes,
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            claims=MappingProxyType(dict(self.claims)),  # shared by the caller's runs
        )
        object.__setattr__(self, "auth_context", context)


class Access:
    """`auth.roles`: which permissions each role grants, and the check each endpoint makes.

    With no roles configured (or no authentication) nothing is enforced and every caller
    has every permission, as before roles existed."""

    def __init__(self, config: AuthConfig | None) -> None:
        roles = config.roles if config is not None and config.mode != "none" else []
        self.roles: dict[str, tuple[str, ...]] = {
            role.name: tuple(role.permissions) for role in roles
        }
        self.enforced = bool(self.roles)
        # id -> (principal, resolved); the principal is kept, so its id stays its own
        self._resolved: dict[int, tuple[Principal, Principal]] = {}

    def resolve(self, principal: Principal) -> Principal:
        """The principal with the permissions its roles grant (plus any a verified token
        grants itself, when they name known permissions). The anonymous caller and each API
        key are one principal object each: resolved once, remembered by identity."""
        remembered = self._resolved.get(id(principal))
        if remembered is not None and remembered[0] is principal:
            return remembered[1]
        resolved = self._resolve(principal)
        if (principal is ANONYMOUS or principal.method == "api_key") and len(self._resolved) < 1024:
            self._resolved[id(principal)] = (principal, resolved)
        return resolved

    def _resolve(self, principal: Principal) -> Principal:
        if not self.enforced:
            return replace(principal, permissions=PERMISSIONS)
        granted = {p for role in principal.roles for p in self.roles.get(role, ())}
        granted |= set(principal.permissions) & set(PERMISSIONS)
        return replace(principal, permissions=tuple(p for p in PERMISSIONS if p in granted))

    def require(self, principal: Principal, permission: str | None) -> None:
        if permission is None or permission in principal.permissions:
            return
        roles = ", ".join(principal.roles) or "none"
        raise Refused(
            f"This endpoint needs the '{permission}' permission, which the caller's roles "
            f"({roles}) do not grant",
            "FORBIDDEN",
            "INSUFFICIENT_PERMISSIONS",
            {"required_permissions": [permission], "roles": list(principal.roles)},
        )


ANONYMOUS = Principal(id=None)


def principal_of(request: Request) -> Principal:
    """Who is calling: set by `protect` before a protected handler runs."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when the header is absent,
    empty or names another scheme."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Authenticator:
    """No authentication: everyone is the anonymous caller. Each `auth.mode` subclasses it."""

    scheme: str = "none"

    async def authenticate(self, request: Request) -> Principal:
        return ANONYMOUS


class Limiter(Protocol):
    """A caller's rate limit: `check` refuses (429) or returns what the answer's headers
    say of it (`headers()`)."""

    async def check(self, principal: Principal) -> Any: ...


async def authorize(
    request: Request,
    auth: Authenticator,
    access: Access,
    permission: str | None,
    limiter: Limiter | None,
) -> dict[str, str]:
    """Who is calling (`principal_of(request)` from now on), whether they hold
    `permission`, and their rate limit: raises `AuthFailed` or `Refused`, else returns the
    headers the answer carries (the rate limit's)."""
    principal = access.resolve(await auth.authenticate(request))
    request.state.principal = principal
    access.require(principal, permission)
    decision = await limiter.check(principal) if limiter is not None else None
    if decision is None:
        return {}
    headers: dict[str, str] = decision.headers()
    return headers


class HeadersAfterwards(Protocol):
    """A response that is not a Starlette `Response` but takes headers before it starts
    (an event stream)."""

    def add_headers(self, headers: dict[str, str]) -> None: ...


def protect(
    handler: Callable[[Request], Awaitable[Any]],
    auth: Authenticator,
    access: Access | None = None,
    permission: str | None = None,
    limiter: Limiter | None = None,
) -> Callable[[Request], Awaitable[Any]]:
    """`handler` behind `authorize`: all before anything else of the request is looked at
    (its body included). The rate limit's headers go on the answer."""
    access = access or Access(None)

    async def endpoint(request: Request) -> Any:
        headers = await authorize(request, auth, access, permission, limiter)
        response = await handler(request)
        if headers:
            if isinstance(response, Response):
                response.headers.update(headers)
            else:
                stream: HeadersAfterwards = response
                stream.add_headers(headers)
        return response

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint

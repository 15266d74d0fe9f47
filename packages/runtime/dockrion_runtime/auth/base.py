"""Who is calling and what they may do: API keys (constant-time comparison), JWTs (PyJWT,
the `jwt` extra), OAuth 2 token introspection, or no authentication; then the roles and
permissions of `auth.roles`.

Keys are read once, when the app is built; a missing key is a start-up error, never a 500
per request. Keys and tokens are never logged, and never reach agent code: agents get an
`AuthContext` built from the principal.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from dockrion_events import AuthContext
from dockrion_schema import PERMISSIONS, ApiKeysConfig, AuthConfig

from ..wire.sse import EventStreamResponse

__all__ = [
    "Access",
    "ApiKeyAuth",
    "AuthConfigError",
    "AuthFailed",
    "Authenticator",
    "Limiter",
    "Principal",
    "Refused",
    "build_auth",
    "principal_of",
    "protect",
]


class AuthConfigError(Exception):
    """The Dockfile's auth section cannot work as configured (raised at start-up)."""

    code = "AUTH_CONFIG_ERROR"


class AuthFailed(Exception):
    """401: the caller did not prove who it is."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.message = message
        self.error = error

    def body(self) -> dict[str, object]:
        return {
            "detail": {
                "message": self.message,
                "code": "AUTH_ERROR",
                "error": self.error,
                "details": {},
            }
        }


class Refused(Exception):
    """A known caller refused (403 FORBIDDEN, 429 RATE_LIMIT_EXCEEDED). The body holds both
    shapes clients know: the runtime's `{"success", "error", "code"}` and the auth errors'
    `{"detail": {"message", "code", "error", "details"}}`."""

    def __init__(
        self,
        message: str,
        code: str,
        error: str,
        details: dict[str, object],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error = error
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {
            "success": False,
            "error": self.message,
            "code": self.code,
            "details": self.details,
            "detail": {
                "message": self.message,
                "code": self.code,
                "error": self.error,
                "details": self.details,
            },
        }


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


class Authenticator:
    scheme: str = "none"

    async def authenticate(self, request: Request) -> Principal:
        return ANONYMOUS


class ApiKeyAuth(Authenticator):
    scheme = "api_key"

    def __init__(
        self,
        keys: Mapping[str, str],
        header: str,
        allow_bearer: bool,
        roles: Mapping[str, list[str]] | None = None,
    ) -> None:
        # key_id -> key bytes; compared with every key so timing reveals nothing.
        self._keys = [(key_id, key.encode()) for key_id, key in keys.items()]
        self.header = header
        self.allow_bearer = allow_bearer
        # A key not named in `api_keys.roles` has the role "default". One principal per
        # key, made once (`Access.resolve` remembers what it resolved them to).
        named = {key_id: tuple(names) for key_id, names in (roles or {}).items()}
        self._principals = {
            key_id: Principal(
                id=f"api_key:{key_id}",
                method="api_key",
                key_id=key_id,
                roles=named.get(key_id, ("default",)),
            )
            for key_id in keys
        }

    async def authenticate(self, request: Request) -> Principal:
        supplied = request.headers.get(self.header, "").strip()
        if not supplied and self.allow_bearer:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                supplied = token.strip()
        if not supplied:
            where = f"the '{self.header}' header"
            if self.allow_bearer:
                where += " or 'Authorization: Bearer <key>'"
            raise AuthFailed(f"API key required: send it in {where}", "MISSING_CREDENTIALS")
        candidate = supplied.encode()
        matched: str | None = None
        for key_id, key in self._keys:
            if hmac.compare_digest(candidate, key) and matched is None:
                matched = key_id
        if matched is None:
            raise AuthFailed("Invalid API key", "INVALID_CREDENTIALS")
        return self._principals[matched]


_KEY_ID = re.compile(r"[A-Z0-9][A-Z0-9_]*")


def _api_keys(config: AuthConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """key id -> key. With `prefix: team`, exactly `TEAM_API_KEY` (key id `default`) and
    `TEAM_API_KEY_<ID>` (key id `<id>` in lower case) are keys; no other variable is, so
    an unrelated `TEAM_OTHER` never becomes a way in."""
    settings = config.api_keys or ApiKeysConfig()
    env_var = settings.env_var
    prefix = settings.prefix
    if prefix:
        single = prefix.upper().rstrip("_") + "_API_KEY"
        keys = {
            name[len(single) + 1 :].lower() if name != single else "default": value
            for name, value in environ.items()
            if value and (name == single or _named_key(name, single))
        }
        if not keys:
            raise AuthConfigError(
                f"auth.api_keys.prefix is {prefix!r} but neither {single} nor any "
                f"{single}_<ID> variable holds a key (e.g. {single}_ALICE=...)"
            )
        return keys
    key = environ.get(env_var, "")
    if not key:
        raise AuthConfigError(
            f"auth mode api_key needs a key: set the environment variable {env_var} "
            "(or auth.api_keys.env_var / prefix in the Dockfile)"
        )
    return {"default": key}


def _named_key(name: str, single: str) -> bool:
    return name.startswith(single + "_") and _KEY_ID.fullmatch(name[len(single) + 1 :]) is not None


def build_auth(config: AuthConfig | None, environ: Mapping[str, str]) -> Authenticator:
    """The authenticator the Dockfile asks for. Raises `AuthConfigError` when it cannot work."""
    if config is None or config.mode == "none":
        return Authenticator()
    if config.mode == "api_key":
        settings = config.api_keys or ApiKeysConfig()
        return ApiKeyAuth(
            _api_keys(config, environ),
            header=settings.header,
            allow_bearer=settings.allow_bearer,
            roles=settings.roles,
        )
    if config.mode == "jwt":
        if config.jwt is None:
            raise AuthConfigError(
                "auth mode jwt needs an auth.jwt section (jwks_url or public_key_env)"
            )
        from .jwt_auth import JwtAuth  # imports this module

        return JwtAuth(config.jwt, environ)
    if config.mode == "oauth2":
        if config.oauth2 is None:
            raise AuthConfigError(
                "auth mode oauth2 needs an auth.oauth2 section (introspection_url, "
                "client_id_env, client_secret_env)"
            )
        from .oauth2 import OAuth2Introspection  # imports this module

        return OAuth2Introspection(
            config.oauth2, config.jwt.claims if config.jwt else None, environ
        )
    raise AuthConfigError(
        f"auth mode {config.mode!r} is not known; use api_key, jwt, oauth2 or none"
    )


class Limiter(Protocol):
    async def check(self, principal: Principal) -> Any: ...


def protect(
    handler: Callable[[Request], Awaitable[Any]],
    auth: Authenticator,
    access: Access | None = None,
    permission: str | None = None,
    limiter: Limiter | None = None,
) -> Callable[[Request], Awaitable[Any]]:
    """`handler` behind authentication, then (when roles are configured) `permission`,
    then the caller's rate limit: all before anything else of the request is looked at
    (its body included). The rate limit's headers go on the answer."""
    access = access or Access(None)

    async def endpoint(request: Request) -> Any:
        principal = access.resolve(await auth.authenticate(request))
        request.state.principal = principal
        access.require(principal, permission)
        decision = await limiter.check(principal) if limiter is not None else None
        response = await handler(request)
        if decision is not None:
            if isinstance(response, Response):
                response.headers.update(decision.headers())
            elif isinstance(response, EventStreamResponse):
                response.add_headers(decision.headers())
        return response

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint

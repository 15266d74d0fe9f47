"""Who is calling: API keys (constant-time comparison) or no authentication.

Keys are read once, when the app is built; a missing key is a start-up error, never a 500
per request. Keys and tokens are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from dockrion_schema import AuthConfig

__all__ = [
    "ApiKeyAuth",
    "AuthConfigError",
    "AuthFailed",
    "Authenticator",
    "Principal",
    "build_auth",
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


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `id` decides run ownership."""

    id: str | None
    method: str = "none"
    key_id: str | None = None
    claims: dict[str, object] = field(default_factory=dict)


ANONYMOUS = Principal(id=None)


class Authenticator:
    scheme: str = "none"

    async def authenticate(self, request: Request) -> Principal:
        return ANONYMOUS


class ApiKeyAuth(Authenticator):
    scheme = "api_key"

    def __init__(self, keys: Mapping[str, str], header: str, allow_bearer: bool) -> None:
        # key_id -> key bytes; compared with every key so timing reveals nothing.
        self._keys = [(key_id, key.encode()) for key_id, key in keys.items()]
        self.header = header
        self.allow_bearer = allow_bearer

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
        return Principal(id=f"api_key:{matched}", method="api_key", key_id=matched)


def _api_keys(config: AuthConfig, environ: Mapping[str, str]) -> dict[str, str]:
    settings = config.api_keys
    env_var = settings.env_var if settings else "DOCKRION_API_KEY"
    prefix = settings.prefix if settings else None
    if prefix:
        stem = prefix.upper().rstrip("_") + "_"
        keys = {
            name[len(stem) :].lower() or "default": value
            for name, value in environ.items()
            if name.startswith(stem) and value
        }
        if not keys:
            raise AuthConfigError(
                f"auth.api_keys.prefix is {prefix!r} but no environment variable starting "
                f"with {stem} holds a key (e.g. {stem}API_KEY=...)"
            )
        return keys
    key = environ.get(env_var, "")
    if not key:
        raise AuthConfigError(
            f"auth mode api_key needs a key: set the environment variable {env_var} "
            "(or auth.api_keys.env_var / prefix in the Dockfile)"
        )
    return {"default": key}


def build_auth(config: AuthConfig | None, environ: Mapping[str, str]) -> Authenticator:
    """The authenticator the Dockfile asks for. Raises `AuthConfigError` when it cannot work."""
    if config is None or config.mode == "none":
        return Authenticator()
    if config.mode == "api_key":
        settings = config.api_keys
        return ApiKeyAuth(
            _api_keys(config, environ),
            header=settings.header if settings else "X-API-Key",
            allow_bearer=settings.allow_bearer if settings else True,
        )
    raise AuthConfigError(
        f"auth mode {config.mode!r} is not available in this release yet; use 'api_key' or 'none'"
    )

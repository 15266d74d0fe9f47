"""Who is calling and what they may do. `base` holds what every method shares (the
principal, the bearer token, `Access` for `auth.roles`, and `authorize`, the one check HTTP
and WebSocket both make); `api_keys`, `jwt_auth` (the `jwt` extra) and `oauth2` are the
methods, chosen by `methods.build_auth`; `rate_limits` counts each caller's requests."""

from .base import (
    Access,
    AuthConfigError,
    Authenticator,
    AuthFailed,
    Limiter,
    Principal,
    Refused,
    authorize,
    principal_of,
    protect,
)
from .methods import build_auth

__all__ = [
    "Access",
    "AuthConfigError",
    "AuthFailed",
    "Authenticator",
    "Limiter",
    "Principal",
    "Refused",
    "authorize",
    "build_auth",
    "principal_of",
    "protect",
]

"""JWT bearer tokens (PyJWT, the `jwt` extra) and the claims that make a principal, shared
with OAuth 2 introspection: the subject, email, name, roles, permissions, scopes and tenant
through the dot paths of `jwt.claims`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from dockrion_schema import JWTClaimsConfig, JWTConfig

from .base import AuthConfigError, Authenticator, AuthFailed, Principal, bearer_token

__all__ = ["JwtAuth", "claim", "principal_from_claims"]


def claim(claims: dict[str, Any], path: str | None) -> Any:
    """`claims["realm_access"]["roles"]` for the dot path `realm_access.roles`."""
    if not path:
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class JwtAuth(Authenticator):
    scheme = "jwt"

    def __init__(self, config: JWTConfig, environ: Mapping[str, str]) -> None:
        try:
            import jwt
        except ImportError:
            raise AuthConfigError(
                "auth mode jwt needs PyJWT: pip install 'dockrion-runtime[jwt]'"
            ) from None
        self._jwt = jwt
        self._config = config
        self._key: Any = None
        self._jwks: Any = None
        if config.jwks_url:
            # Keys cached for an hour; fetched in a worker thread, never on the loop.
            self._jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=3600)
        elif config.public_key_env:
            self._key = environ.get(config.public_key_env, "")
            if not self._key:
                raise AuthConfigError(
                    f"auth.jwt.public_key_env names {config.public_key_env}, which is not set"
                )
        else:
            raise AuthConfigError(
                "auth mode jwt needs auth.jwt.jwks_url or auth.jwt.public_key_env"
            )

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise AuthFailed(
                "Bearer token required: send 'Authorization: Bearer <jwt>'", "MISSING_CREDENTIALS"
            )
        jwt = self._jwt
        config = self._config
        try:
            key = self._key
            if self._jwks is not None:
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={
                    "verify_aud": config.audience is not None,
                    # exp, nbf and iat (not in the future) are checked whenever present,
                    # within the leeway; a token without exp never expires, so it is
                    # refused unless the Dockfile says otherwise.
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "require": ["exp"] if config.require_exp else [],
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed(
                "JWT validation failed: the token has expired", "TOKEN_EXPIRED"
            ) from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthFailed(f"JWT validation failed: {exc}", "TOKEN_INVALID") from None
        principal = principal_from_claims(claims, self._config.claims, "jwt")
        if principal is None:
            raise AuthFailed("JWT validation failed: the token names no subject", "TOKEN_INVALID")
        return principal


def _strings(value: Any, split: bool = False) -> tuple[str, ...]:
    """A claim as a list of strings: a list as is, a scalar wrapped, a space-separated
    string split when `split` (scopes), missing as empty."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split()) if split else (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return (str(value),)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def principal_from_claims(
    claims: dict[str, Any], mapping: JWTClaimsConfig | None, method: str
) -> Principal | None:
    """The caller a verified token (or an introspection answer) describes, through the
    claim paths of `jwt.claims`; None when it names no subject."""
    mapping = mapping or JWTClaimsConfig()
    subject = claim(claims, mapping.user_id)
    if subject is None:
        return None
    return Principal(
        id=f"{method}:{subject}",
        method=method,
        claims=claims,
        user_id=str(subject),
        email=_text(claim(claims, mapping.email)),
        name=_text(claim(claims, mapping.name)),
        roles=_strings(claim(claims, mapping.roles)),
        permissions=_strings(claim(claims, mapping.permissions)),
        scopes=_strings(claim(claims, mapping.scopes), split=True),
        tenant_id=_text(claim(claims, mapping.tenant_id)),
        client_id=_text(claims.get("azp") or claims.get("client_id")),
    )

"""`auth.mode: oauth2`: bearer tokens checked by OAuth 2 token introspection (RFC 7662).

The runtime posts the token to `oauth2.introspection_url`, authenticating with HTTP Basic
and the client id and secret read from the environment variables `client_id_env` and
`client_secret_env`. An inactive token is 401; an active one lacking a scope of
`required_scopes` is 403 FORBIDDEN naming them; an endpoint that cannot answer is 503
AUTH_UNAVAILABLE. Answers are cached for 30 seconds (never past the token's `exp`), keyed
by a hash of the token; the request runs in a worker thread, never on the event loop.
The caller's identity comes from the answer through `auth.jwt.claims` (subject `sub`,
else `username`, else `client_id`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from dockrion_schema import JWTClaimsConfig, OAuth2Config

from .base import (
    AuthConfigError,
    Authenticator,
    AuthFailed,
    Principal,
    Refused,
    bearer_token,
)
from .jwt_auth import principal_from_claims

__all__ = ["CACHE_SECONDS", "OAuth2Introspection"]

CACHE_SECONDS = 30.0
_MAX_CACHED = 10_000
_TIMEOUT = 10.0


class OAuth2Introspection(Authenticator):
    scheme = "oauth2"

    def __init__(
        self,
        config: OAuth2Config,
        claims: JWTClaimsConfig | None,
        environ: Mapping[str, str],
    ) -> None:
        if not config.introspection_url:
            raise AuthConfigError("auth mode oauth2 needs auth.oauth2.introspection_url")
        credentials: list[str] = []
        for field in ("client_id_env", "client_secret_env"):
            name = getattr(config, field)
            if not name:
                raise AuthConfigError(f"auth mode oauth2 needs auth.oauth2.{field}")
            value = environ.get(name, "")
            if not value:
                raise AuthConfigError(f"auth.oauth2.{field} names {name}, which is not set")
            credentials.append(value)
        client_id, secret = (urllib.parse.quote(value, safe="") for value in credentials)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self._authorization = f"Basic {basic}"
        self._url = config.introspection_url
        self._required = tuple(config.required_scopes)
        self._claims = claims
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise AuthFailed(
                "Bearer token required: send 'Authorization: Bearer <token>'",
                "MISSING_CREDENTIALS",
            )
        answer = await self._answer(token)
        if answer.get("active") is not True:
            raise AuthFailed(
                "The token is not active (expired, revoked or unknown)", "TOKEN_INVALID"
            )
        identity = dict(answer)
        identity.setdefault("sub", answer.get("username") or answer.get("client_id"))
        principal = principal_from_claims(identity, self._claims, "oauth2")
        if principal is None:
            raise AuthFailed("The token names no subject or client", "TOKEN_INVALID")
        missing = [scope for scope in self._required if scope not in principal.scopes]
        if missing:
            raise Refused(
                f"The token lacks the required scopes: {', '.join(missing)}",
                "FORBIDDEN",
                "INSUFFICIENT_SCOPE",
                {"required_scopes": list(self._required), "missing_scopes": missing},
            )
        return principal

    async def _answer(self, token: str) -> dict[str, Any]:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = await asyncio.to_thread(self._introspect, token)
        lifetime = CACHE_SECONDS
        expires = answer.get("exp")
        if isinstance(expires, int | float):
            lifetime = min(lifetime, max(float(expires) - time.time(), 0.0))
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
        self._cache[key] = (now + lifetime, answer)
        return answer

    def _introspect(self, token: str) -> dict[str, Any]:
        body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
        request = urllib.request.Request(  # noqa: S310 - the Dockfile's own endpoint
            self._url,
            data=body.encode(),
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = (
                f"HTTP {exc.code}"
                if isinstance(exc, urllib.error.HTTPError)
                else type(exc).__name__
            )
            raise Refused(
                f"The token introspection endpoint did not answer ({reason}); try again later",
                "AUTH_UNAVAILABLE",
                "INTROSPECTION_FAILED",
                {},
            ) from None
        if not isinstance(answer, dict):
            raise Refused(
                "The token introspection endpoint answered something other than a JSON object",
                "AUTH_UNAVAILABLE",
                "INTROSPECTION_FAILED",
                {},
            )
        return answer

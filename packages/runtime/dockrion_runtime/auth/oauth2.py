"""`auth.mode: oauth2`: bearer tokens checked by OAuth 2 token introspection (RFC 7662).

The runtime posts the token to `oauth2.introspection_url`, authenticating with HTTP Basic
and the client id and secret read from the environment variables `client_id_env` and
`client_secret_env`. An inactive token is 401; an active one lacking a scope of
`required_scopes` is 403 FORBIDDEN naming them; an endpoint that cannot answer is 503
AUTH_UNAVAILABLE. The caller's identity comes from the answer through `auth.jwt.claims`
(subject `sub`, else `username`, else `client_id`).

What a flood of bad tokens can cost is bounded, so that it never delays valid callers:

- answers are cached, keyed by a hash of the token: an active token's for 30 s (never
  past its `exp`), an inactive one's for 5 s;
- one introspection at a time per token: concurrent requests with the same token share
  its answer;
- introspections run on threads of their own (`POOL_THREADS`), never the loop's default
  executor that agents and other work share, and a client address has at most
  `IN_FLIGHT_PER_ADDRESS` of them at once;
- a client address whose tokens failed `FAILURES_PER_ADDRESS` times within
  `FAILURE_WINDOW` seconds is refused (429, `Retry-After`) without asking the endpoint
  until the window ends.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
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

__all__ = [
    "CACHE_SECONDS",
    "FAILURES_PER_ADDRESS",
    "FAILURE_WINDOW",
    "IN_FLIGHT_PER_ADDRESS",
    "NEGATIVE_CACHE_SECONDS",
    "POOL_THREADS",
    "OAuth2Introspection",
]

CACHE_SECONDS = 30.0
NEGATIVE_CACHE_SECONDS = 5.0
POOL_THREADS = 16
IN_FLIGHT_PER_ADDRESS = 4
FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = 60.0
_MAX_CACHED = 10_000
_MAX_ADDRESSES = 100_000
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
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # made when needed
        self._in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}  # by token hash
        self._asking: dict[str, int] = {}  # introspections running, by client address
        # client address -> (failures, end of its window), oldest window first
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise AuthFailed(
                "Bearer token required: send 'Authorization: Bearer <token>'",
                "MISSING_CREDENTIALS",
            )
        address = request.client.host if request.client is not None else ""
        self._check_failures(address)
        answer = await self._answer(token, address)
        if answer.get("active") is not True:
            self._failed(address)
            raise AuthFailed(
                "The token is not active (expired, revoked or unknown)", "TOKEN_INVALID"
            )
        identity = dict(answer)
        identity.setdefault("sub", answer.get("username") or answer.get("client_id"))
        principal = principal_from_claims(identity, self._claims, "oauth2")
        if principal is None:
            self._failed(address)
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

    # --- failures per client address ---------------------------------------------------

    def _check_failures(self, address: str) -> None:
        now = time.monotonic()
        failures = self._failures
        while failures:  # windows that ended, oldest first
            oldest, (_, ends) = next(iter(failures.items()))
            if ends > now:
                break
            del failures[oldest]
        count, ends = failures.get(address, (0, now))
        if count >= FAILURES_PER_ADDRESS:
            wait = max(int(ends - now) + 1, 1)
            raise _too_many(
                f"{count} failed logins from this address within {FAILURE_WINDOW:g} s; "
                f"retry in {wait} s",
                wait,
            )

    def _failed(self, address: str) -> None:
        now = time.monotonic()
        count, ends = self._failures.get(address, (0, 0.0))
        if ends <= now:  # a new window, last in the order of expiry
            self._failures.pop(address, None)
            count, ends = 0, now + FAILURE_WINDOW
            if len(self._failures) >= _MAX_ADDRESSES:
                self._failures.popitem(last=False)
        self._failures[address] = (count + 1, ends)

    # --- introspection ------------------------------------------------------------------

    async def _answer(self, token: str, address: str = "") -> dict[str, Any]:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        task = self._in_flight.get(key)
        if task is None:  # the first request with this token asks; the others wait for it
            if self._asking.get(address, 0) >= IN_FLIGHT_PER_ADDRESS:
                raise _too_many(
                    f"{IN_FLIGHT_PER_ADDRESS} token checks from this address are already "
                    "running; retry in 1 s",
                    1,
                )
            self._asking[address] = self._asking.get(address, 0) + 1
            task = asyncio.ensure_future(self._fetch(token, key))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._asked(key, address, done))
        return await asyncio.shield(task)

    def _asked(self, key: str, address: str, task: asyncio.Task[dict[str, Any]]) -> None:
        self._in_flight.pop(key, None)
        left = self._asking.get(address, 1) - 1
        if left > 0:
            self._asking[address] = left
        else:
            self._asking.pop(address, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    async def _fetch(self, token: str, key: str) -> dict[str, Any]:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                POOL_THREADS, thread_name_prefix="dockrion-introspection"
            )
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self._pool, self._introspect, token)
        now = time.monotonic()
        lifetime = CACHE_SECONDS if answer.get("active") is True else NEGATIVE_CACHE_SECONDS
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


def _too_many(message: str, retry_after: int) -> Refused:
    return Refused(
        message,
        "TOO_MANY_LOGINS",
        "TOO_MANY_LOGINS",
        {"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )

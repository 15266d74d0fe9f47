"""`auth.rate_limits`: requests per principal, counted with GCRA (the generic cell rate
algorithm, a sliding window with no burst at the window's edge).

A limit `N/window` lets a principal make N requests at once, then one more every
window/N seconds. Every request to an endpoint that needs authentication counts, once
the caller is identified and allowed (refused 401, 403 and 429 requests do not count).
A principal with several roles gets the most generous of their roles' limits, and a role
without a limit is unlimited; a principal with no role is limited by the `default` entry.

With the memory backend each process counts on its own. With the Redis backend every
instance shares one count per principal: one Lua script reads and updates it atomically,
with Redis's own clock, under `<key_prefix>:ratelimit:<hash of the principal>`.

When that Redis is gone or does not answer within `REDIS_TIMEOUT` seconds, the request is
refused with 503 BACKEND_UNAVAILABLE and `Retry-After` (never a 500): the log gets one
warning when the outage starts (repeated at most once a minute, with the number refused)
and one when Redis answers again. Nothing needs restarting: every check tries Redis anew.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dockrion_events.backends.redis_layout import Keys
from dockrion_schema import RATE_WINDOW_SECONDS

from ..errors import RuntimeHTTPError
from .base import Principal, Refused

__all__ = [
    "REDIS_TIMEOUT",
    "UNAVAILABLE_RETRY_AFTER",
    "Decision",
    "Limit",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "limits_from",
]

log = logging.getLogger("dockrion.runtime")

# How long one check may wait on Redis, in all (pool, connecting, the script's answer); it
# is also each connection's connect and socket timeout, unless the URL sets its own.
REDIS_TIMEOUT = 2.0
# The `Retry-After` of a 503 while Redis is unavailable, in seconds.
UNAVAILABLE_RETRY_AFTER = 5
_WARN_EVERY = 60.0  # seconds between two warnings of one outage


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window: int  # seconds

    @classmethod
    def parse(cls, text: str) -> Limit:
        """A normalised Dockfile limit, `"100/hour"`."""
        count, _, window = text.partition("/")
        return cls(int(count), RATE_WINDOW_SECONDS[window])

    @property
    def interval(self) -> float:
        return self.window / self.count


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: Limit
    remaining: int
    reset: float  # seconds until the full allowance is back
    retry_after: float  # seconds until the next request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        limit = self.limit
        headers = {
            "RateLimit-Limit": str(limit.count),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset)),
            "RateLimit-Policy": f"{limit.count};w={limit.window}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(math.ceil(self.retry_after), 1))
        return headers


def _decide(limit: Limit, now: float, stored: float | None) -> tuple[Decision, float | None]:
    """GCRA: the decision and the new theoretical arrival time (None: unchanged)."""
    tat = max(stored or now, now)
    new_tat = tat + limit.interval
    allow_at = new_tat - limit.window
    if now < allow_at:
        remaining = 0
        reset = tat - now
        return Decision(False, limit, remaining, reset, allow_at - now), None
    return Decision(True, limit, _remaining(limit, new_tat - now), new_tat - now, 0.0), new_tat


def _remaining(limit: Limit, until_tat: float) -> int:
    """Requests still allowed at once; the tolerance absorbs float rounding (the first of N
    leaves N - 1, not N - 2 because `tat + interval - now` came out a hair above interval)."""
    return max(math.floor((limit.window - until_tat) / limit.interval + 1e-6), 0)


def limits_from(rate_limits: dict[str, str]) -> dict[str, Limit]:
    return {role: Limit.parse(text) for role, text in rate_limits.items()}


class RateLimiter:
    """The limits of the roles; subclasses keep the counts."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self.limits = limits

    def limit_for(self, principal: Principal) -> Limit | None:
        roles = principal.roles or ("default",)
        found = [self.limits.get(role) for role in roles]
        if not self.limits or any(limit is None for limit in found):
            return None  # a role without a limit is unlimited
        return max(
            (limit for limit in found if limit is not None), key=lambda x: x.count / x.window
        )

    async def check(self, principal: Principal) -> Decision | None:
        """The decision for one more request of `principal` (None: not limited); raises
        429 RATE_LIMIT_EXCEEDED when it is over its limit."""
        limit = self.limit_for(principal)
        if limit is None:
            return None
        key = hashlib.sha256((principal.id or "anonymous").encode()).hexdigest()[:32]
        decision = await self.hit(key, limit)
        if not decision.allowed:
            raise Refused(
                f"Rate limit of {limit.count} requests per {limit.window} s exceeded; retry "
                f"in {max(math.ceil(decision.retry_after), 1)} s",
                "RATE_LIMIT_EXCEEDED",
                "RATE_LIMIT_EXCEEDED",
                {"retry_after": max(math.ceil(decision.retry_after), 1)},
                headers=decision.headers(),
            )
        return decision

    async def hit(self, key: str, limit: Limit) -> Decision:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class MemoryRateLimiter(RateLimiter):
    """Counts in this process (the event loop is its only user: no lock needed)."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        super().__init__(limits)
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, limit: Limit) -> Decision:
        now = time.monotonic()
        if len(self._tat) > 10_000:  # forget principals whose allowance is whole again
            self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
        decision, new_tat = _decide(limit, now, self._tat.get(key))
        if new_tat is not None:
            self._tat[key] = new_tat
        return decision


def _backend_unavailable() -> RuntimeHTTPError:
    """503 BACKEND_UNAVAILABLE: the count lives in a Redis that is gone or silent. The body
    names the request id, as every 5xx body does; never the Redis URL or the error."""
    retry_after = UNAVAILABLE_RETRY_AFTER
    return RuntimeHTTPError(
        f"Rate limits cannot be checked: the Redis that counts them does not answer; retry "
        f"in {retry_after} s",
        "BACKEND_UNAVAILABLE",
        {"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def _with_timeouts(url: str, seconds: float) -> str:
    """`url` with redis-py's connect and socket timeouts, unless it sets them itself."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {name for name, _ in query}
    query += [
        (name, str(seconds))
        for name in ("socket_connect_timeout", "socket_timeout")
        if name not in given
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


# KEYS[1] the principal's key; ARGV: window (s), interval (s). Returns
# {allowed, tat - now, allow_at - now} in microseconds, with Redis's clock.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, tat - now, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, new_tat - now, 0}
"""


class RedisRateLimiter(RateLimiter):
    """Counts shared by every instance on one Redis (a Redis Cluster: one key a script; a
    primary found through Sentinel), through the event backend's kind of connections (a
    pool of its own). A check waits `timeout` seconds at most; a Redis that is gone or
    silent makes it raise 503 BACKEND_UNAVAILABLE, and the next check tries again."""

    def __init__(
        self,
        limits: dict[str, Limit],
        url: str,
        key_prefix: str,
        cluster: bool = False,
        sentinel: Any = None,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        super().__init__(limits)
        self._url = url
        self._key = Keys(key_prefix).rate_limit
        self._cluster = cluster
        self._sentinel = sentinel  # a dockrion_events SentinelService, or None
        self._timeout = timeout
        self._connections: Any = None
        self._script: Any = None
        # what "Redis is unavailable" raises: redis-py's errors (added once it is
        # imported), OSError from sockets, and TimeoutError (an OSError) from our deadline
        self._unavailable: tuple[type[BaseException], ...] = (OSError,)
        # the outage under way: when it began, when it was last logged, refusals since
        self._down_since: float | None = None
        self._warned_at = 0.0
        self._refused = 0
        self._refused_in_all = 0

    def _ensure(self) -> Any:
        if self._script is None:
            from redis.exceptions import RedisError

            from dockrion_events.backends.redis_clients import connect

            self._unavailable = (RedisError, OSError)
            url = _with_timeouts(self._url, self._timeout)
            self._connections = connect(url, 10, self._cluster, self._sentinel)
            self._script = self._connections.client.register_script(_GCRA)
        return self._script

    async def hit(self, key: str, limit: Limit) -> Decision:
        try:
            async with asyncio.timeout(self._timeout):
                allowed, until_tat, until_allowed = await self._ensure()(
                    keys=[self._key(key)],
                    args=[limit.window * 1_000_000, int(limit.interval * 1_000_000)],
                )
        except self._unavailable as exc:
            self._note_failure(exc)
            raise _backend_unavailable() from None
        if self._down_since is not None:
            self._note_recovery()
        until_tat /= 1_000_000
        if not allowed:
            return Decision(False, limit, 0, until_tat, until_allowed / 1_000_000)
        return Decision(True, limit, _remaining(limit, until_tat), until_tat, 0.0)

    def _where(self) -> str:
        if self._sentinel is not None:
            return str(self._sentinel.url)
        from dockrion_events.backends.redis_clients import safe_url

        return safe_url(self._url)

    def _note_failure(self, exc: BaseException) -> None:
        """One warning line when an outage begins, then at most one a minute while it
        lasts; never a traceback (the cause is the error's type and text)."""
        now = time.monotonic()
        self._refused += 1
        self._refused_in_all += 1
        if self._down_since is not None and now - self._warned_at < _WARN_EVERY:
            return
        if isinstance(exc, TimeoutError) and not str(exc):
            cause = f"no answer within {self._timeout:g} s"
        else:
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "rate limits: Redis at %s does not answer (%s); rate-limited requests are "
                "refused with 503 BACKEND_UNAVAILABLE until it does",
                self._where(),
                cause,
            )
        else:
            log.warning(
                "rate limits: Redis at %s still does not answer after %.0f s (%s); %d "
                "requests refused with 503 BACKEND_UNAVAILABLE since the last warning",
                self._where(),
                now - self._down_since,
                cause,
                self._refused,
            )
        self._warned_at = now
        self._refused = 0

    def _note_recovery(self) -> None:
        assert self._down_since is not None
        log.warning(
            "rate limits: Redis at %s answers again after %.0f s; %d requests were refused "
            "with 503 BACKEND_UNAVAILABLE meanwhile",
            self._where(),
            time.monotonic() - self._down_since,
            self._refused_in_all,
        )
        self._down_since = None
        self._refused = self._refused_in_all = 0

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()

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
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from dockrion_schema import RATE_WINDOW_SECONDS

from .auth import Principal, Refused

__all__ = [
    "Decision",
    "Limit",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "limits_from",
]


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
    remaining = int((limit.window - (new_tat - now)) // limit.interval)
    return Decision(True, limit, max(remaining, 0), new_tat - now, 0.0), new_tat


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
    primary found through Sentinel), through the event backend's kind of connections."""

    def __init__(
        self,
        limits: dict[str, Limit],
        url: str,
        key_prefix: str,
        cluster: bool = False,
        sentinel: Any = None,
    ) -> None:
        super().__init__(limits)
        self._url = url
        self._prefix = f"{key_prefix}:ratelimit:"
        self._cluster = cluster
        self._sentinel = sentinel  # a dockrion_events SentinelService, or None
        self._connections: Any = None
        self._script: Any = None

    def _ensure(self) -> Any:
        if self._script is None:
            from dockrion_events.backends.redis_clients import connect

            self._connections = connect(self._url, 10, self._cluster, self._sentinel)
            self._script = self._connections.client.register_script(_GCRA)
        return self._script

    async def hit(self, key: str, limit: Limit) -> Decision:
        script = self._ensure()
        allowed, until_tat, until_allowed = await script(
            keys=[self._prefix + key],
            args=[limit.window * 1_000_000, int(limit.interval * 1_000_000)],
        )
        until_tat /= 1_000_000
        if not allowed:
            return Decision(False, limit, 0, until_tat, until_allowed / 1_000_000)
        remaining = int((limit.window - until_tat) // limit.interval)
        return Decision(True, limit, max(remaining, 0), until_tat, 0.0)

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()

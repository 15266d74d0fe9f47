"""Per-caller bounds on work going at once: runs (`auth.max_runs_per_caller`) and open
subscriptions to runs (`auth.max_streams_per_caller`), or a role's own `max_runs` and
`max_streams` (with several roles, the largest applies).

A caller past its bound is refused 429 (`TOO_MANY_RUNS`, `TOO_MANY_STREAMS`) with
`Retry-After`, so that no caller can take every place others need. Without
authentication there is one caller, and these bounds do not apply: the server's own
limits do.

With the memory backend each process counts on its own. With the Redis backend every
instance shares one count per caller and kind: a sorted set of slots under
`<key_prefix>:slots:<kind>:<hash of the principal>`, each slot scored by when its lease
ends. An instance renews the leases of its slots while they are held, so the slots of an
instance that died leave by themselves within `streaming.redis.lease_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Literal

from dockrion_events import BackendError
from dockrion_events.backends.redis_layout import Keys
from dockrion_schema import AuthConfig

from .base import Principal, Refused

__all__ = ["CallerSlots", "Kind", "MemoryCallerSlots", "RedisCallerSlots", "holds_a_slot"]

log = logging.getLogger("dockrion.runtime")

Kind = Literal["runs", "streams"]

_CODES = {"runs": "TOO_MANY_RUNS", "streams": "TOO_MANY_STREAMS"}
_WHAT = {"runs": "runs going", "streams": "open streams"}
# Places free up as the caller's own work ends: ask again soon.
RETRY_AFTER = 1


def _release_nothing() -> None:
    return None


def holds_a_slot(release: Callable[[], None]) -> bool:
    """Whether `take`'s release gives a place back (False when no bound applied)."""
    return release is not _release_nothing


class CallerSlots:
    """The bounds of each caller; subclasses count the slots taken."""

    def __init__(self, auth: AuthConfig | None) -> None:
        self.enabled = auth is not None and auth.mode != "none"
        self._defaults: dict[str, int] = {
            "runs": auth.max_runs_per_caller if auth else 0,
            "streams": auth.max_streams_per_caller if auth else 0,
        }
        self._roles: dict[str, dict[str, int | None]] = {
            role.name: {"runs": role.max_runs, "streams": role.max_streams}
            for role in (auth.roles if auth else [])
        }

    def bound(self, principal: Principal, kind: Kind) -> int | None:
        """How many `kind` the principal may hold at once (None: not bounded)."""
        if not self.enabled or principal.id is None:
            return None
        default = self._defaults[kind]
        values = [(self._roles.get(role, {}).get(kind) or default) for role in principal.roles]
        return max(values, default=default)

    async def take(self, principal: Principal, kind: Kind) -> Callable[[], None]:
        """Take one slot of `kind` for the principal; returns the function that gives it
        back (call it once). Raises 429 when the principal holds its bound already."""
        bound = self.bound(principal, kind)
        if bound is None:
            return _release_nothing
        assert principal.id is not None
        key = hashlib.sha256(principal.id.encode()).hexdigest()[:32]
        release = await self.acquire(kind, key, bound)
        if release is None:
            raise Refused(
                f"This caller already has {bound} {_WHAT[kind]} (the most one caller may "
                f"have at once); retry in {RETRY_AFTER} s or when one has ended",
                _CODES[kind],
                _CODES[kind],
                {"limit": bound, "retry_after": RETRY_AFTER},
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        return _once(release)

    async def acquire(self, kind: str, key: str, bound: int) -> Callable[[], None] | None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def _once(release: Callable[[], None]) -> Callable[[], None]:
    done = False

    def release_once() -> None:
        nonlocal done
        if not done:
            done = True
            release()

    return release_once


class MemoryCallerSlots(CallerSlots):
    """Counts in this process (the event loop is its only user: no lock needed)."""

    def __init__(self, auth: AuthConfig | None) -> None:
        super().__init__(auth)
        self._held: dict[tuple[str, str], int] = {}

    def held(self, kind: str, key: str) -> int:
        return self._held.get((kind, key), 0)

    async def acquire(self, kind: str, key: str, bound: int) -> Callable[[], None] | None:
        slot = (kind, key)
        count = self._held.get(slot, 0)
        if count >= bound:
            return None
        self._held[slot] = count + 1

        def release() -> None:
            left = self._held.get(slot, 1) - 1
            if left > 0:
                self._held[slot] = left
            else:
                self._held.pop(slot, None)

        return release


# KEYS[1] the slots; ARGV: bound, lease (ms), member. 1 when taken, else 0; with Redis's clock.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] the slots; ARGV: lease (ms), then the members this instance holds there.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', ends, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RedisCallerSlots(CallerSlots):
    """Counts shared by every instance on one Redis, through the event backend's kind of
    connections (one server, a cluster, or a primary found through Sentinel)."""

    def __init__(
        self,
        auth: AuthConfig | None,
        url: str,
        key_prefix: str,
        lease_seconds: float,
        cluster: bool = False,
        sentinel: Any = None,
    ) -> None:
        super().__init__(auth)
        self._url = url
        self._key = Keys(key_prefix).caller_slots
        self._lease_ms = int(lease_seconds * 1000)
        self._cluster = cluster
        self._sentinel = sentinel
        self._instance = uuid.uuid4().hex[:12]
        self._numbers = itertools.count()
        self._connections: Any = None
        self._scripts: dict[str, Any] = {}
        self._held: dict[str, set[str]] = {}  # key -> members this instance holds
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _ensure(self) -> dict[str, Any]:
        if not self._scripts:
            from dockrion_events.backends.redis_clients import connect

            self._connections = connect(self._url, 10, self._cluster, self._sentinel)
            client = self._connections.client
            self._scripts = {
                "acquire": client.register_script(_ACQUIRE),
                "renew": client.register_script(_RENEW),
            }
        return self._scripts

    async def acquire(self, kind: str, key: str, bound: int) -> Callable[[], None] | None:
        scripts = self._ensure()
        name = self._key(kind, key)
        member = f"{self._instance}:{next(self._numbers)}"
        try:
            taken = await scripts["acquire"](keys=[name], args=[bound, self._lease_ms, member])
        except Exception as exc:
            raise BackendError(f"counting a caller's {kind}: {exc}", "redis") from None
        if not taken:
            return None
        self._held.setdefault(name, set()).add(member)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew())

        def release() -> None:
            members = self._held.get(name)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._held[name]
            task = asyncio.ensure_future(self._remove(name, member))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return release

    async def _remove(self, name: str, member: str) -> None:
        try:
            await self._connections.client.zrem(name, member)
        except Exception as exc:  # its lease ends by itself
            log.warning("could not give back a caller's slot in Redis: %s", exc)

    async def _renew(self) -> None:
        """While slots are held: renew their leases, a third of a lease apart."""
        renew = self._scripts["renew"]
        while self._held:
            await asyncio.sleep(self._lease_ms / 3000)
            for name, members in list(self._held.items()):
                if members:
                    try:
                        await renew(keys=[name], args=[self._lease_ms, *members])
                    except Exception as exc:  # tried again at the next round
                        log.warning("could not renew a caller's slots in Redis: %s", exc)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connections is not None:
            await self._connections.close()

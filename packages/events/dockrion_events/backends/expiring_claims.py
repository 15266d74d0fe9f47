"""Claims that expire, in memory: the memory backend's thread ownerships, resume claims,
thread records and stop requests."""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["ExpiringClaims"]


class ExpiringClaims:
    """Claims that expire: a key held by an owner until an expiry (monotonic seconds), at
    most `limit` at once.

    A dict answers lookups; a heap of (expiry, key) gives the order claims expire in, so
    expired claims leave as soon as any claim is made, each once (no scan of the table). A
    renewal pushes a new heap entry; the stale one is skipped when it comes up, and the
    heap is rebuilt from the dict when stale entries outnumber live ones, so each claim
    costs O(log n) amortised whatever the number held.
    """

    __slots__ = ("_expiry", "_heap", "limit", "on_drop")

    def __init__(self, limit: int, on_drop: Callable[[str], object] | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.on_drop = on_drop  # told of each key that expires or is popped
        self._expiry: dict[str, tuple[str, float]] = {}  # key -> (owner, expiry)
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    @property
    def heap_size(self) -> int:
        """Entries of the expiry heap, stale ones included (at most about twice the claims)."""
        return len(self._heap)

    def owner(self, key: str, now: float) -> str | None:
        """Who holds `key` at `now`, or None."""
        held = self._expiry.get(key)
        return held[0] if held is not None and held[1] > now else None

    def expired_count(self, now: float) -> int:
        """Claims still stored although they expired by `now` (for tests; a scan)."""
        return sum(1 for _, expiry in self._expiry.values() if expiry <= now)

    def put(self, key: str, owner: str, expiry: float, now: float) -> bool:
        """Hold `key` for `owner` until `expiry`; False (nothing changed) when `limit` live
        claims of other keys are held."""
        self.expire(now)
        expiries = self._expiry
        if key not in expiries and len(expiries) >= self.limit:
            return False
        expiries[key] = (owner, expiry)
        heap = self._heap
        heapq.heappush(heap, (expiry, key))
        if len(heap) > 2 * len(expiries) + 64:
            self._heap = [(held, name) for name, (_, held) in expiries.items()]
            heapq.heapify(self._heap)
        return True

    def pop(self, key: str) -> None:
        if self._expiry.pop(key, None) is not None and self.on_drop is not None:
            self.on_drop(key)  # its heap entry goes stale

    def expire(self, now: float) -> None:
        """Drop every claim whose expiry has passed."""
        heap, expiries = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            expiry, key = heapq.heappop(heap)
            held = expiries.get(key)
            if held is not None and held[1] == expiry:
                del expiries[key]
                if self.on_drop is not None:
                    self.on_drop(key)

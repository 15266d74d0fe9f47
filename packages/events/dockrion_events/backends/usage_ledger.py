"""Usage per owner per day in one process (the memory backend's): a dict of days, the
oldest dropped past the retention."""

from __future__ import annotations

from .base import USAGE_FIELDS, USAGE_RETENTION_DAYS

__all__ = ["UsageLedger"]


class UsageLedger:
    def __init__(self, max_owners_per_day: int = 100_000) -> None:
        self._days: dict[str, dict[str, dict[str, float]]] = {}
        self._max_owners = max_owners_per_day

    def add(self, owner: str, day: str, usage: dict[str, float]) -> None:
        owners = self._days.get(day)
        if owners is None:
            owners = self._days[day] = {}
            for old in sorted(self._days)[:-USAGE_RETENTION_DAYS]:
                del self._days[old]
        fields = owners.get(owner)
        if fields is None:
            if len(owners) >= self._max_owners:
                return  # bounded memory: past this many callers a day, new ones go uncounted
            fields = owners[owner] = dict.fromkeys(USAGE_FIELDS, 0.0)
        for name in USAGE_FIELDS:
            fields[name] += float(usage.get(name, 0) or 0)

    def read(self, day: str, owner: str | None = None) -> dict[str, dict[str, float]]:
        owners = self._days.get(day, {})
        if owner is not None:
            return {owner: dict(owners[owner])} if owner in owners else {}
        return {name: dict(fields) for name, fields in owners.items()}

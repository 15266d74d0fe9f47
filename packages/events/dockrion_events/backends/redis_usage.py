"""Usage per owner per day in Redis, shared by every instance: one hash of counters per
owner and day (`HINCRBY`, `HINCRBYFLOAT`: atomic, no script) and a set of the day's owners,
both expiring after the retention."""

from __future__ import annotations

from typing import Any

from .base import USAGE_FIELDS, USAGE_RETENTION_DAYS
from .redis_layout import Keys, text

__all__ = ["add_usage", "read_usage"]

_TTL_SECONDS = USAGE_RETENTION_DAYS * 86_400


async def add_usage(client: Any, keys: Keys, owner: str, day: str, usage: dict[str, float]) -> None:
    key, owners = keys.usage(day, owner), keys.usage_owners(day)
    pipe = client.pipeline(transaction=False)
    for name in USAGE_FIELDS:
        value = float(usage.get(name, 0) or 0)
        if not value:
            continue
        if name == "cost":
            pipe.hincrbyfloat(key, name, value)
        else:
            pipe.hincrby(key, name, int(value))
    pipe.expire(key, _TTL_SECONDS)
    pipe.sadd(owners, owner)
    pipe.expire(owners, _TTL_SECONDS)
    await pipe.execute()


async def read_usage(
    client: Any, keys: Keys, day: str, owner: str | None
) -> dict[str, dict[str, float]]:
    if owner is not None:
        owners = [owner]
    else:
        owners = sorted(text(name) for name in await client.smembers(keys.usage_owners(day)))
    found: dict[str, dict[str, float]] = {}
    for name in owners:
        fields = await client.hgetall(keys.usage(day, name))
        if fields:
            values = {text(k): float(text(v)) for k, v in fields.items()}
            found[name] = {field: values.get(field, 0.0) for field in USAGE_FIELDS}
    return found

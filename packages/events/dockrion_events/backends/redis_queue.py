"""The queue of background runs in Redis: one stream every instance shares, read through a
consumer group, so each queued run is delivered to one worker at a time.

A worker's lease on a run is its entry's idle time in the group's pending list: a live
worker renews it (`renew`), and an entry left idle past the claim time belongs to a worker
that died or stalled, which any worker may take over (`reclaim`, XAUTOCLAIM). An entry is
acknowledged and deleted once its run has ended (`done`), and handed back with its idle time
set past the claim time (`hand_back`) when a worker stops before the run ends, so the next
sweep of any worker takes it at once.

The stream is one key (`Keys.queue`): on a cluster it lives on one node, and no command
here touches it together with a run's keys.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from redis.exceptions import ResponseError

from .redis_clients import redis_errors
from .redis_layout import Keys, text

__all__ = ["QueuedRun", "RedisRunQueue"]

# XPENDING names the entry's consumer: renew only the entries this worker still holds, so a
# worker that stalled past the claim time never takes back a run another worker took over.
_RENEW = """
local kept = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #entry == 1 and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

# ARGV: group, consumer, entry id, idle ms. Hands an entry this worker holds back to the
# group, idle for `idle ms` already, so a worker's next sweep takes it.
_HAND_BACK = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #entry == 1 and entry[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
  return 1
end
return 0
"""


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedRun:
    """One delivery of a queued run: the stream entry, the run and what starts it."""

    entry_id: str
    run_id: str
    job: dict[str, Any]


class RedisRunQueue:
    """The queue under one key prefix, as seen by one consumer (a worker, or an API instance
    that only submits)."""

    GROUP = Keys.QUEUE_GROUP

    def __init__(self, client: Any, blocking: Any, keys: Keys, consumer: str, url: str) -> None:
        self._client = client
        self._blocking = blocking  # the waiting read holds its connection
        self._keys = keys
        self.consumer = consumer
        self._url = url
        self._renew = client.register_script(_RENEW)
        self._hand_back = client.register_script(_HAND_BACK)
        self._group_ready = False

    async def ensure_group(self) -> None:
        """Create the stream and its group when missing (every instance may try)."""
        with self._errors("creating the run queue"):
            try:
                await self._client.xgroup_create(
                    self._keys.queue, self.GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._group_ready = True

    async def submit(self, run_id: str, job: dict[str, Any]) -> str:
        fields = {"run": run_id, "job": json.dumps(job, separators=(",", ":"))}
        with self._errors("queueing a run"):
            entry = await self._client.xadd(self._keys.queue, fields)
        return text(entry)

    async def take(self, count: int, block_ms: int) -> list[QueuedRun]:
        """Up to `count` runs nobody was given yet, waiting up to `block_ms` for one."""
        if not self._group_ready:
            await self.ensure_group()
        with self._errors("taking runs from the queue"):
            try:
                reply = await self._blocking.xreadgroup(
                    self.GROUP, self.consumer, {self._keys.queue: ">"}, count=count, block=block_ms
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # Redis lost the group (restarted empty): made again
                return []
        return [run for _, entries in reply or [] for run in _decode(entries)]

    async def reclaim(self, idle_ms: int, count: int) -> list[QueuedRun]:
        """Runs whose worker stopped renewing them for `idle_ms`: now this worker's."""
        with self._errors("taking over runs"):
            try:
                reply = await self._client.xautoclaim(
                    self._keys.queue, self.GROUP, self.consumer, idle_ms, "0-0", count=count
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False
                return []
        return _decode(reply[1])

    async def renew(self, entry_ids: list[str]) -> set[str]:
        """Renew this worker's lease on its runs; returns the entries it no longer holds."""
        if not entry_ids:
            return set()
        with self._errors("renewing the hold on runs"):
            kept = await self._renew(
                keys=[self._keys.queue], args=[self.GROUP, self.consumer, *entry_ids]
            )
        return set(entry_ids) - {text(entry) for entry in kept}

    async def hand_back(self, entry_id: str, idle_ms: int) -> None:
        with self._errors("handing a run back"):
            await self._hand_back(
                keys=[self._keys.queue], args=[self.GROUP, self.consumer, entry_id, idle_ms]
            )

    async def done(self, entry_id: str) -> None:
        with self._errors("acknowledging a run"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xack(self._keys.queue, self.GROUP, entry_id)
                pipe.xdel(self._keys.queue, entry_id)
                await pipe.execute()

    async def depth(self) -> tuple[int, int]:
        """(runs waiting for a worker, runs a worker holds). An entry leaves the stream once
        acknowledged, so the stream holds exactly the runs waiting or held."""
        with self._errors("measuring the run queue"):
            try:
                groups = await self._client.xinfo_groups(self._keys.queue)
                length = int(await self._client.xlen(self._keys.queue))
            except ResponseError:
                return 0, 0  # no queue yet
        for group in groups:
            if text(group["name"]) == self.GROUP:
                held = int(group["pending"])
                return max(0, length - held), held
        return length, 0

    def _errors(self, doing: str) -> Any:
        return redis_errors(self._url, doing)


def _decode(entries: Any) -> list[QueuedRun]:
    runs: list[QueuedRun] = []
    for entry_id, fields in entries or []:
        if not fields:  # deleted meanwhile
            continue
        runs.append(QueuedRun(text(entry_id), text(fields[b"run"]), json.loads(fields[b"job"])))
    return runs

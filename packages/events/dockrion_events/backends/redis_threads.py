"""A thread's record and the requests to stop its runs, in Redis: the part of
`RedisBackend` about threads' runs (keys under the thread's hash tag, `Keys.thread_record`
and `Keys.thread_stop`)."""

from __future__ import annotations

import json
from typing import Any

from .redis_index import newest
from .redis_layout import Keys, text

__all__ = ["RedisThreadRecords"]


class RedisThreadRecords:
    """Mixed into `RedisBackend`, which gives the client, the keys, the scripts and how
    Redis errors become backend errors."""

    _client: Any
    _keys: Keys
    _scripts: dict[str, Any]

    def _errors(self, doing: str) -> Any:
        raise NotImplementedError

    async def stop_thread_turn(
        self, thread_id: str, holder: str, reason: str, ttl_seconds: float
    ) -> None:
        key = self._keys.thread_stop(thread_id, holder)
        with self._errors("stopping a thread's run"):
            await self._client.set(key, reason, px=max(1, int(ttl_seconds * 1000)))

    async def thread_turn_stopping(self, thread_id: str, holder: str) -> str | None:
        with self._errors("reading a thread's stop request"):
            reason = await self._client.get(self._keys.thread_stop(thread_id, holder))
        return None if reason is None else text(reason)

    async def record_thread_run(
        self,
        thread_id: str,
        run_id: str,
        entry: dict[str, Any],
        *,
        created_us: int,
        ttl_seconds: float | None,
        max_runs: int,
    ) -> None:
        ttl = "" if ttl_seconds is None else str(max(1, int(ttl_seconds * 1000)))
        with self._errors("recording a thread's run"):
            await self._scripts["record_run"](
                keys=self._keys.thread_record(thread_id),
                args=[run_id, created_us, json.dumps(entry), ttl, max_runs],
            )

    async def thread_run_entries(
        self, thread_id: str, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[dict[str, Any]]:
        runs, record = self._keys.thread_record(thread_id)
        with self._errors("reading a thread's runs"):
            ids = await newest(self._client, runs, limit, before)
            if not ids:
                return []
            found = await self._client.hmget(record, [run_id for _, run_id in ids])
        return [json.loads(item) for item in found if item is not None]

    async def delete_thread_record(self, thread_id: str) -> None:
        with self._errors("deleting a thread's record"):
            for key in self._keys.thread_record(thread_id):
                await self._client.delete(key)  # one key a command: any cluster slot

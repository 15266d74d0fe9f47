"""Bytes one stored event costs in Redis, and the memory of 1,000 runs of 1,000 events.

Fills a throwaway redis-server (or `--url`) through `RedisBackend`: each run is created,
started, given `--events` token events (a short word each, as a streamed LLM answer) in
batches, and completed, so its keys are exactly what the runtime leaves for the retention.
Reports `MEMORY USAGE` of each key of a sample of runs (state hash, log stream), the bytes
per stored event from that, and the growth of `used_memory` for the whole set.

    hatch run bench:python tools/bench/redis_memory.py --runs 1000 --events 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from harness import redis_server

from dockrion_events import EventRecord, Run, RunStatus
from dockrion_events.backends.redis import RedisBackend
from dockrion_events.models import CompleteEvent, StartedEvent, TokenEvent


async def fill(url: str, runs: int, events: int, batch: int) -> dict[str, Any]:
    backend = RedisBackend(
        url, stream_ttl_seconds=3600, max_events_per_run=events + 10, key_prefix="mem"
    )
    client = backend._client
    await client.flushdb()
    base = int((await client.info("memory"))["used_memory"])

    async def one() -> str:
        run_id = uuid.uuid4().hex
        await backend.create_run(Run(run_id=run_id, agent_name="bench", framework="custom"))
        await backend.start_run(run_id)
        records = [EventRecord.from_event(StartedEvent(run_id=run_id, sequence=0))]
        records += [
            EventRecord.from_event(TokenEvent(run_id=run_id, sequence=n, content=f"word{n} "))
            for n in range(1, events - 1)
        ]
        for start in range(0, len(records), batch):
            await backend.append(run_id, records[start : start + batch])
        await backend.finish_run(
            run_id,
            RunStatus.COMPLETED,
            lambda seq: CompleteEvent(run_id=run_id, sequence=seq, output={"words": events}),
            output={"words": events},
        )
        return run_id

    ids: list[str] = []
    for start in range(0, runs, 50):
        ids += await asyncio.gather(*(one() for _ in range(min(50, runs - start))))
    used = int((await client.info("memory"))["used_memory"]) - base
    sample = ids[:: max(1, len(ids) // 20)]
    state = log = 0
    for run_id in sample:
        state += int(await client.memory_usage(backend._keys.state(run_id), samples=0))
        log += int(await client.memory_usage(backend._keys.log(run_id), samples=0))
    index = int(await client.memory_usage(backend._keys.runs, samples=0))
    sample_events = len(sample) * events
    sample_event = TokenEvent(run_id=ids[0], sequence=1, content="word1 ").to_json()
    await backend.close()
    return {
        "runs": runs,
        "events_per_run": events,
        "token_event_json_bytes": len(sample_event),
        "memory_usage_state_bytes_per_run": round(state / len(sample)),
        "memory_usage_log_bytes_per_run": round(log / len(sample)),
        "memory_usage_bytes_per_event": round((state + log) / sample_events, 1),
        "index_bytes_per_run": round(index / runs, 1),
        "used_memory_growth_mib": round(used / 2**20, 1),
        "used_memory_bytes_per_event": round(used / (runs * events), 1),
        "sample_event": sample_event,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="events per append")
    parser.add_argument("--url", help="a Redis to fill (flushed!); default: a throwaway one")
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(fill(args.url, args.runs, args.events, args.batch))
    else:
        with redis_server() as url:
            assert url is not None, "redis-server is not installed"
            result = asyncio.run(fill(url, args.runs, args.events, args.batch))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

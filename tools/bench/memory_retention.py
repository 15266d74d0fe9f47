"""Memory held by finished runs on the memory backend, per run and per stored event.

Drives the real path of a background run (RunManager, StreamContext, InMemoryBackend): each
run emits `started`, then `--tokens` token events and `--tokens` progress events, then
`complete` with a small output, like the quickstart agent. Reports the bytes that stay
allocated (tracemalloc) and the growth of the process's resident memory, divided by the
number of runs and of events kept.

    hatch run bench:python tools/bench/memory_retention.py --runs 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc
from pathlib import Path

from dockrion_events import EventBus, InMemoryBackend, RunManager


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def fill(runs: int, tokens: int, max_runs: int | None) -> dict[str, float]:
    backend = InMemoryBackend(max_runs=max_runs)
    manager = RunManager(EventBus(backend), agent_name="quickstart", framework="custom")
    gc.collect()
    rss_before = rss_kib()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for index in range(runs):
        run = await manager.create_run(owner=None)
        context = manager.get_context(run.run_id)
        assert context is not None
        await manager.start_run(run.run_id)
        for word in range(tokens):
            await context.emit_token(f"word{word}")
            await context.emit_progress("echo", (word + 1) / tokens)
        await context.emit_complete({"answer": f"hello from run {index}", "words": tokens}, 0.05)
        manager.forget(run.run_id)
        await asyncio.sleep(0)  # let the loop run what each run scheduled, as a server does
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = backend.run_count()
    events = kept * (2 + 2 * tokens)
    return {
        "runs_created": runs,
        "runs_kept": kept,
        "events_per_run": 2 + 2 * tokens,
        "bytes_per_run": round((after - before) / kept),
        "bytes_per_event": round((after - before) / events),
        "rss_growth_mib": round((rss_kib() - rss_before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=3)
    parser.add_argument("--max-runs", type=int, default=None, help="the backend's cap")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(fill(args.runs, args.tokens, args.max_runs)), indent=2))


if __name__ == "__main__":
    main()

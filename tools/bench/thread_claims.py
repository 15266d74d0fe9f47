"""Cost of one thread claim on the memory backend as the claim table grows.

Fills the table with `N` claims of distinct threads by distinct callers, then times the
next 2,000 claims (new threads), five times, and reports the best microseconds per claim
at each size (the best of five, since other processes share the machine), and the bytes a
claim holds:

    hatch run bench:python tools/bench/thread_claims.py [--sizes 1000,100000,200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc

from dockrion_events import InMemoryBackend

TTL = 30 * 24 * 3600.0  # what the runtime keeps a claim for


async def per_claim(size: int, probes: int = 2_000, rounds: int = 5) -> tuple[float, float]:
    backend = InMemoryBackend(max_threads=size + probes * rounds)
    claim = backend.claim_thread
    tracemalloc.start()
    for index in range(size):
        await claim(f"run-{index:032x}", f"caller-{index % 1000}", TTL)
    held = tracemalloc.get_traced_memory()[0] / max(size, 1)
    tracemalloc.stop()
    best = float("inf")
    for round_ in range(rounds):
        started = time.perf_counter()
        for index in range(probes):
            await claim(f"probe-{round_}-{index}", "caller-probe", TTL)
        best = min(best, (time.perf_counter() - started) / probes * 1e6)
    return best, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,50000,100000,150000,200000")
    sizes = [int(text) for text in parser.parse_args().sizes.split(",")]
    for size in sizes:
        cost, held = asyncio.run(per_claim(size))
        print(f"{size:>8,} claims held: {cost:8.2f} us per claim, {held:6.0f} bytes per claim")


if __name__ == "__main__":
    main()

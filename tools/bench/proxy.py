"""What nginx in front costs: one `dockrion-runtime serve` of the suite's agent, reached
directly and through nginx running docs/deploy/nginx.conf as documented (ports replaced,
`proxy_buffering off`, upstream keep-alive), in one interleaved run.

    hatch run bench:proxy [--rounds 3] [--agent sync|async] [--workers auto] [--no-fanout]

Workloads (those of `run_all.py`, the same client): one SSE stream of 20,000 tokens
(events/s); 200 sequential one-token streams (time to the first token, p50); 2,000
`POST /invoke` at concurrency 20 on keep-alive connections (req/s); 100 subscribers joining
a 2,000-token run paced at 1 ms on `/runs` (events delivered/s). Each round runs every
workload once per path, in an order that alternates from round to round; figures are
medians over rounds with their spread (half the range, in % of the median); the ratio is
through nginx over direct (above 1 is faster for a rate, slower for a time). Beside each
figure: the CPU share (CPU time over wall time) of the client (this process), the runtime
and nginx's workers (from /proc). Every process shares this machine's cores. Loopback only.

Writes tools/bench/results/proxy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import Nginx, nginx_binary
from run_all import (
    HERE,
    SPECS,
    Server,
    Spec,
    _cell,
    cpu_seconds,
    orders,
    prepare_bench_process,
    server,
    summarize,
    warm,
)

PATHS = ["direct", "nginx"]
DETAILS = {
    "W1": ["first_token_ms"],
    "W2": ["p99_ms", "complete_p50_ms"],
    "W3": ["complete", "gaps", "duplicates"],
    "W5": ["p50_ms", "p99_ms"],
}
TITLES = {
    "W1": "SSE flood, 20,000 tokens",
    "W2": "first token, 200 one-token streams",
    "W3": "fan-out, 100 subscribers, 2,000 tokens at 1 ms",
    "W5": "POST /invoke, concurrency 20",
}


async def once(spec: Spec, srv: Server, nginx_pids: list[int]) -> dict[str, float]:
    """One repetition, with nginx's share added (about zero on the direct path)."""
    before, started = sum(map(cpu_seconds, nginx_pids)), time.perf_counter()
    figures = await spec.function(srv)
    wall = time.perf_counter() - started
    figures["nginx_cpu"] = (sum(map(cpu_seconds, nginx_pids)) - before) / wall
    return figures


def measure(
    specs: list[Spec], servers: dict[str, Server], nginx_pids: list[int], rounds: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every workload on both paths, `rounds` times, the paths' order alternating; the
    summaries by workload, then path."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        spec.key: {path: [] for path in PATHS} for spec in specs
    }

    async def scenario() -> None:
        for spec in specs:
            for path in PATHS:
                await warm(spec, servers[path])
        for order in orders(PATHS, rounds):
            for spec in specs:
                for path in order:
                    runs[spec.key][path].append(await once(spec, servers[path], nginx_pids))

    asyncio.run(scenario())
    return {
        key: {path: summarize(values) for path, values in paths.items()}
        for key, paths in runs.items()
    }


def _shares(summary: dict[str, Any]) -> str:
    return "/".join(f"{summary[key]:.2f}" for key in ("client_cpu", "server_cpu", "nginx_cpu"))


def table(results: dict[str, Any]) -> str:
    header = (
        f"{'workload':48} {'metric':16} {'direct':>14} {'nginx':>14} {'ratio':>6}   "
        "CPU client/runtime/nginx (direct | nginx)"
    )
    lines = [header, "-" * len(header)]
    for key, entry in results["workloads"].items():
        direct, proxied = entry["direct"], entry["nginx"]
        lines.append(
            f"{TITLES[key]:48} {entry['unit']:16} {_cell(direct, entry['headline']):>14} "
            f"{_cell(proxied, entry['headline']):>14} {entry['ratio']:6.2f}   "
            f"{_shares(direct)} | {_shares(proxied)}"
        )
        for detail in DETAILS[key]:
            lines.append(
                f"{'':48} {detail:16} {_cell(direct, detail):>14} {_cell(proxied, detail):>14}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agent", choices=["sync", "async"], default="sync")
    parser.add_argument(
        "--workers", default="auto", help="nginx worker_processes (documented: auto)"
    )
    parser.add_argument("--no-fanout", action="store_true", help="skip the 100 subscribers")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "proxy.json")
    args = parser.parse_args()
    if nginx_binary() is None:
        sys.exit("nginx is not installed (apt-get install nginx-light)")
    prepare_bench_process()  # the runtime and nginx are stopped on SIGTERM too
    keys = ["W1", "W2", "W5"] if args.no_fanout else ["W1", "W2", "W5", "W3"]
    specs = [next(spec for spec in SPECS if spec.key == key) for key in keys]
    started = time.perf_counter()
    with (
        server(args.agent) as runtime,
        tempfile.TemporaryDirectory() as directory,
    ):
        upstream = runtime.url.removeprefix("http://")
        upstreams = [f"{upstream} max_fails=1 fail_timeout=5s"]
        proxy = Nginx(Path(directory), upstreams, workers=args.workers)
        proxy.start()
        try:
            servers = {
                "direct": runtime,
                "nginx": Server("nginx", proxy.url, runtime.pid, runtime.process),
            }
            workers = proxy.worker_pids()
            measured = measure(specs, servers, workers, args.rounds)
        finally:
            proxy.stop()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rounds": args.rounds,
        "agent": args.agent,
        "nginx_workers": len(workers),
        "workloads": {},
    }
    for spec in specs:
        direct, proxied = measured[spec.key]["direct"], measured[spec.key]["nginx"]
        results["workloads"][spec.key] = {
            "title": TITLES[spec.key],
            "headline": spec.headline,
            "unit": spec.unit,
            "direct": direct,
            "nginx": proxied,
            "ratio": proxied[spec.headline] / direct[spec.headline],
        }
    results["seconds"] = time.perf_counter() - started
    print(table(results))
    print(
        f"({args.agent} agent, nginx with {len(workers)} workers, {args.rounds} rounds, "
        f"{results['seconds']:.0f} s; ratio = through nginx / direct)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

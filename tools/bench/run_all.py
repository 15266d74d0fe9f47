"""The benchmark suite: our runtime (a sync and an async agent) beside a plain Starlette
baseline serving the same bytes, in one interleaved run.

    hatch run bench:all [--rounds 3] [--quick] [--ours-python PATH]

Every server runs on a free loopback port under uvicorn with its defaults (log level info,
as a user starts it); the baseline explicitly with uvloop and httptools. The client
(`client.py`: raw sockets, asyncio Protocols, parsing in `data_received`) runs in this
process; beside every figure it reports the client's CPU share (this process's CPU time
over wall time) and the server's (from /proc/<pid>/stat), so a reader sees which side was
busy. Each round runs every target once, in an order that alternates from round to round;
figures are medians over rounds, with their spread (half the range, in % of the median).
Ratios are ours over the baseline (inverted for times and memory): higher is better.

Workloads: W1 one stream of 20,000 tokens (events/s); W2 200 sequential one-token streams
(first token p50/p99); W3 100 subscribers joining a 2,000-token run paced at 1 ms on /runs
(gaps, duplicates); W4 300 concurrent streams of 10 tokens at 100 ms (fresh server each
round: success, wall, peak RSS, RSS per stream); W5 2,000 POST /invoke at concurrency 20
on keep-alive connections (req/s, p50, p99). W1 and W3 also on the Redis backend when
`redis-server` is installed. WS: WebSocket beside SSE (`ws_bench.py`, its own table, last).
`--ours-python` serves ours from another environment (e.g. one where the runtime is
installed as a user got it before a change).

Writes tools/bench/results/latest.json and docs/performance.png (with matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import KeepAlive, StreamResult, Target, calibrate, request_bytes, stream
from harness import free_port, redis_server

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite"
ROOT = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PC = time.perf_counter

DOCKFILES = {
    "sync": "Dockfile.yaml",
    "async": "Dockfile.async.yaml",
    "redis": "Dockfile.redis.yaml",
    "retain": "Dockfile.retain.yaml",  # sync agent, memory backend keeping 100,000 events
    "langgraph": "Dockfile.langgraph.yaml",  # chat_graph.py, for token_cost.py
    "ws": "Dockfile.ws.yaml",  # sync agent, SSE and WebSocket (ws_bench.py)
    "ws-async": "Dockfile.ws.async.yaml",
}


# --- processes ---------------------------------------------------------------------------


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise this process's open-file limit (servers started from it inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prepare_bench_process() -> int:
    """What every benchmark's `main` does first: SIGTERM unwinds like Ctrl-C (every server
    the run started is stopped on the way out), the open-file limit is raised (servers
    started from here inherit it), and the client runs on uvloop like the servers. Returns
    the open-file limit."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    limit = raise_fd_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return limit


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Server:
    name: str
    url: str
    pid: int
    process: subprocess.Popen[bytes]

    @property
    def target(self) -> Target:
        return Target.of(self.url)


@contextlib.contextmanager
def server(
    name: str,
    *,
    redis_url: str | None = None,
    ours_python: str | None = None,
    extra: tuple[str, ...] = (),
    prefix: list[str] | None = None,
) -> Iterator[Server]:
    """One server process: `raw` (the baseline) or ours with the agent `sync`, `async` or
    `redis` (sync agent, Redis backend); `prefix` runs it under another program (valgrind,
    which starts it far more slowly)."""
    port = free_port()
    env = dict(os.environ)
    if name == "raw":
        command = [sys.executable, "-m", "uvicorn", "baseline:app", "--loop", "uvloop"]
        command += ["--http", "httptools", "--host", "127.0.0.1", "--port", str(port)]
    else:
        python = ours_python or sys.executable
        command = [python, "-m", "dockrion_runtime", "serve", DOCKFILES[name]]
        command += ["--host", "127.0.0.1", "--port", str(port), *extra]
        if redis_url:
            env["REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [*(prefix or []), *command],
        cwd=SUITE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + (60 if prefix is None else 600)
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {name} did not start")
            time.sleep(0.05)
        yield Server(name, url, process.pid, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


# --- workloads: each measures one repetition on one server --------------------------------


class Meter:
    """Wall time, this process's CPU time and the server's over one measurement."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> Meter:
        self.wall0, self.cpu0, self.server0 = PC(), time.process_time(), cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = PC() - self.wall0
        self.client_cpu = (time.process_time() - self.cpu0) / self.wall
        self.server_cpu = (cpu_seconds(self.pid) - self.server0) / self.wall

    def shares(self) -> dict[str, float]:
        return {"client_cpu": self.client_cpu, "server_cpu": self.server_cpu}


async def w1_flood(srv: Server, tokens: int = 20_000) -> dict[str, float]:
    with Meter(srv.pid) as meter:
        result = await stream(srv.target, "POST", "/invoke/stream", {"tokens": tokens})
    assert result.status == 200 and result.tokens == tokens, result
    assert result.terminal == "complete" and not result.gaps and not result.duplicates, result
    return {
        "events_per_s": result.events / result.wall,
        "first_token_ms": result.first_token_ms or 0.0,
        "writes_per_event": result.reads / result.events,  # reads seen by the client
        **meter.shares(),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def w2_first_token(srv: Server, streams: int = 200) -> dict[str, float]:
    firsts: list[float] = []
    completes: list[float] = []
    with Meter(srv.pid) as meter:
        for _ in range(streams):
            result = await stream(srv.target, "POST", "/invoke/stream", {"tokens": 1}, timeout=30)
            assert result.terminal == "complete" and result.first_token_ms is not None, result
            firsts.append(result.first_token_ms)
            completes.append(1000 * result.wall)
    return {
        "p50_ms": statistics.median(firsts),
        "p99_ms": _percentile(firsts, 0.99),
        "complete_p50_ms": statistics.median(completes),
        **meter.shares(),
    }


async def create_run(srv: Server, body: dict[str, Any]) -> str:
    async with KeepAlive(srv.target) as connection:
        status, answer = await connection.exchange(request_bytes(srv.target, "POST", "/runs", body))
    assert status == 202, (status, answer)
    return str(json.loads(answer)["run_id"])


async def join_paced_run(
    srv: Server,
    subscribe: Callable[[str], Awaitable[StreamResult]],
    tokens: int,
    subscribers: int,
    pace: float,
) -> dict[str, float]:
    """`subscribers` readers (`subscribe(run_id)`) joining one run of `tokens` paced at
    `pace` s, at random times that are the same for every target: events delivered per
    second, and whether each reader got every event once."""
    rng = random.Random(7)
    delays = [rng.random() * tokens * pace for _ in range(subscribers)]
    with Meter(srv.pid) as meter:
        run_id = await create_run(srv, {"tokens": tokens, "pace": pace})

        async def subscriber(delay: float) -> StreamResult:
            await asyncio.sleep(delay)
            return await subscribe(run_id)

        results = await asyncio.gather(*(subscriber(delay) for delay in delays))
    complete = sum(r.tokens == tokens and r.terminal == "complete" for r in results)
    return {
        "delivered_per_s": sum(r.events for r in results) / meter.wall,
        "complete": float(complete),
        "gaps": float(sum(r.gaps for r in results)),
        "duplicates": float(sum(r.duplicates for r in results)),
        **meter.shares(),
    }


async def w3_fanout(
    srv: Server, tokens: int = 2000, subscribers: int = 100, pace: float = 0.001
) -> dict[str, float]:
    def subscribe(run_id: str) -> Awaitable[StreamResult]:
        return stream(srv.target, "GET", f"/runs/{run_id}/events", timeout=60)

    return await join_paced_run(srv, subscribe, tokens, subscribers, pace)


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


async def w4_concurrency(
    srv: Server, streams: int = 300, tokens: int = 10, pace: float = 0.1, timeout: float = 120
) -> dict[str, float]:
    before = rss_kib(srv.pid)
    peak = [before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(srv.pid, peak, stop))
    body = {"tokens": tokens, "pace": pace}
    with Meter(srv.pid) as meter:
        results = await asyncio.gather(
            *(
                stream(srv.target, "POST", "/invoke/stream", body, timeout=timeout)
                for _ in range(streams)
            )
        )
    stop.set()
    await sampler
    ok = sum(r.tokens == tokens and r.terminal == "complete" for r in results)
    return {
        "succeeded": float(ok),
        "wall_s": meter.wall,
        "peak_rss_mib": peak[0] / 1024,
        "rss_per_stream_kib": (peak[0] - before) / streams,
        **meter.shares(),
    }


async def w5_invoke(srv: Server, requests: int = 2000, parallel: int = 20) -> dict[str, float]:
    request = request_bytes(srv.target, "POST", "/invoke", {"tokens": 1})
    latencies: list[float] = []
    remaining = [requests]

    async def worker() -> None:
        async with KeepAlive(srv.target) as connection:
            while remaining[0] > 0:
                remaining[0] -= 1
                started = PC()
                status, _ = await connection.exchange(request)
                latencies.append(PC() - started)
                assert status == 200

    with Meter(srv.pid) as meter:
        await asyncio.gather(*(worker() for _ in range(parallel)))
    return {
        "requests_per_s": requests / meter.wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        **meter.shares(),
    }


Workload = Callable[[Server], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    function: Workload
    headline: str
    higher: bool  # is a higher headline better?
    unit: str
    fresh: bool = False  # a fresh server for every repetition (memory workloads)


SPECS = [
    Spec("W1", "flood, 20,000 tokens", w1_flood, "events_per_s", True, "events/s"),
    Spec("W2", "first token, 200 streams", w2_first_token, "p50_ms", False, "p50 ms"),
    Spec("W3", "fan-out, 100 subscribers", w3_fanout, "delivered_per_s", True, "events/s"),
    Spec(
        "W4",
        "300 concurrent streams",
        w4_concurrency,
        "rss_per_stream_kib",
        False,
        "KiB/stream",
        fresh=True,
    ),
    Spec("W5", "POST /invoke, concurrency 20", w5_invoke, "requests_per_s", True, "req/s"),
]


async def warm(spec: Spec, srv: Server) -> None:
    """A small run first: imports, caches and pools are ready before anything is timed."""
    if spec.key == "W1":
        await w1_flood(srv, 2000)
    elif spec.key == "W2":
        await w2_first_token(srv, 20)
    elif spec.key == "W3":
        await w3_fanout(srv, 200, 10)
    elif spec.key == "W4":
        await w4_concurrency(srv, 20, 2, 0.01)
    else:
        await w5_invoke(srv, 200)


def orders(names: list[str], rounds: int) -> list[list[str]]:
    """Round r runs the targets rotated by r, reversed every other round."""
    out = []
    for index in range(rounds):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        out.append(order[::-1] if index % 2 else order)
    return out


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        median = statistics.median(values)
        summary[key] = median
        spread = (max(values) - min(values)) / 2 / median if median else 0.0
        summary[f"{key}_spread"] = spread
    summary["runs"] = runs
    return summary


def measure(
    spec: Spec,
    names: list[str],
    rounds: int,
    *,
    redis_url: str | None,
    ours_python: str | None,
) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}

    def start(name: str) -> contextlib.AbstractContextManager[Server]:
        return server(name, redis_url=redis_url, ours_python=ours_python)

    if spec.fresh:
        for order in orders(names, rounds):
            for name in order:
                with start(name) as srv:

                    async def once(srv: Server = srv) -> dict[str, float]:
                        await warm(spec, srv)
                        return await spec.function(srv)

                    runs[name].append(asyncio.run(once()))
    else:
        with contextlib.ExitStack() as stack:
            servers = {name: stack.enter_context(start(name)) for name in names}

            async def scenario() -> None:
                for name in names:
                    await warm(spec, servers[name])
                for order in orders(names, rounds):
                    for name in order:
                        runs[name].append(await spec.function(servers[name]))

            asyncio.run(scenario())
    return {name: summarize(values) for name, values in runs.items()}


# --- the table -----------------------------------------------------------------------------


def ratio(spec: Spec, ours: float, raw: float) -> float:
    if spec.headline == "rss_per_stream_kib":
        return raw / ours if ours > 0 else float("inf")
    return ours / raw if spec.higher else raw / ours


def _cell(summary: dict[str, Any], key: str) -> str:
    value, spread = summary[key], summary[f"{key}_spread"]
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} ±{100 * spread:.0f}%"


def table(results: dict[str, Any]) -> str:
    lines = []
    header = (
        f"{'workload':34} {'metric':16} {'raw':>16} {'ours':>16} {'ratio':>6}   "
        "CPU share client/server (raw | ours)"
    )
    lines += [header, "-" * len(header)]
    for label, entry in results["workloads"].items():
        raw = entry["raw"]
        for name, ours in entry["ours"].items():
            spec = next(s for s in SPECS if s.key == entry["key"])
            row_label = f"{label} [{name}]"
            lines.append(
                f"{row_label:34} {spec.unit:16} {_cell(raw, spec.headline):>16} "
                f"{_cell(ours, spec.headline):>16} {entry['ratio'][name]:6.2f}   "
                f"{raw['client_cpu']:.2f}/{raw['server_cpu']:.2f} | "
                f"{ours['client_cpu']:.2f}/{ours['server_cpu']:.2f}"
            )
            for key in spec_details(spec):
                lines.append(f"{'':34} {key:16} {_cell(raw, key):>16} {_cell(ours, key):>16}")
    calib = results["client_alone"]
    lines.append(
        f"client parsing alone (no server): {calib['events_per_s']:,.0f} events/s in 64 KiB "
        f"reads, {calib['events_per_s_one_read_per_event']:,.0f} events/s at one read per event"
    )
    return "\n".join(lines)


def spec_details(spec: Spec) -> list[str]:
    return {
        "W1": ["first_token_ms", "writes_per_event"],
        "W2": ["p99_ms", "complete_p50_ms"],
        "W3": ["complete", "gaps", "duplicates"],
        "W4": ["succeeded", "wall_s", "peak_rss_mib"],
        "W5": ["p50_ms", "p99_ms"],
    }[spec.key]


def chart(results: dict[str, Any], target: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart)")
        return
    labels: list[str] = []
    values: list[float] = []
    for label, entry in results["workloads"].items():
        for name, value in entry["ratio"].items():
            labels.append(f"{label} [{name}]")
            values.append(value)
    figure, axis = plt.subplots(figsize=(9, 0.35 * len(labels) + 1.2))
    colours = ["#2b8a3e" if v >= 1 else "#e67700" if v >= 0.8 else "#c92a2a" for v in values]
    axis.barh(labels, values, color=colours)
    axis.axvline(1.0, color="black", linewidth=1)
    for index, value in enumerate(values):
        axis.text(value, index, f" {value:.2f}", va="center", fontsize=8)
    axis.set_xlabel("ours / plain Starlette in the same run (higher is better; 1.0 = the baseline)")
    axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    print(f"chart: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, no Redis")
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W5,WS")
    parser.add_argument("--ours-python", help="the python that serves ours (default: this one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "performance.png")
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    prepare_bench_process()
    only = {key.strip().upper() for key in args.only.split(",")} if args.only else None
    calib = calibrate()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rounds": rounds,
        "client_alone": {
            "events_per_s": calib.events_per_s,
            "events_per_s_one_read_per_event": calib.events_per_s_one_read_per_event,
        },
        "workloads": {},
    }
    started = PC()
    with redis_server() as redis_url:
        use_redis = bool(redis_url) and not args.quick
        for spec in SPECS:
            if only and spec.key not in only:
                continue
            names = ["raw", "sync", "async"]
            if use_redis and spec.key in ("W1", "W3"):
                names.append("redis")
            measured = measure(
                spec, names, rounds, redis_url=redis_url, ours_python=args.ours_python
            )
            raw = measured.pop("raw")
            entry: dict[str, Any] = {
                "key": spec.key,
                "headline": spec.headline,
                "raw": raw,
                "ours": measured,
                "ratio": {
                    name: ratio(spec, ours[spec.headline], raw[spec.headline])
                    for name, ours in measured.items()
                },
            }
            if "redis" in measured:
                entry["redis_vs_memory"] = (
                    measured["redis"][spec.headline] / measured["sync"][spec.headline]
                )
            label = f"{spec.key} {spec.title}"
            results["workloads"][label] = entry
            print(f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in entry["ratio"].items()))
            sys.stdout.flush()
    results["seconds"] = PC() - started
    print()
    print(table(results))
    for label, entry in results["workloads"].items():
        if "redis_vs_memory" in entry:
            print(f"{label}: redis / memory (sync agent) = {entry['redis_vs_memory']:.2f}")
    print(f"({results['seconds']:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_chart:
        chart(results, args.chart)
    if not only or "WS" in only:
        from ws_bench import run as websocket_bench  # on import: it imports this module

        print()
        websocket_bench(rounds, HERE / "results" / "websocket.json")


if __name__ == "__main__":
    main()

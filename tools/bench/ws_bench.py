"""WebSocket beside SSE: the same events from the same agent on the same server, in one
interleaved run.

    hatch run bench:websocket [--rounds 3] [--quick]

(`bench:all` runs it too, after its own table, unless `--only` leaves out `WS`.)

One server per agent (sync, async) serving both transports (`expose.streaming: [sse,
websocket]`). Each round runs every transport once, in an order that alternates from round
to round; figures are medians over rounds with their spread, ratios are WebSocket over SSE
(higher is better: 1.0 means as fast as SSE). Transports: `sse` (`client.py`), `ws` and
`ws+deflate` (`ws_client.py`, raw sockets; the second offers permessage-deflate as browsers
do, so the server compresses every message and the client inflates). Beside every figure:
the client's and the server's CPU shares. The client alone (parsing recorded-like bytes,
no server) is measured first for both transports and for the `websockets` library's
framing core, so a reader sees that the client is not what limits a figure.

Workloads: flood (one stream of 20,000 tokens: POST /invoke/stream vs WS /invoke/ws;
events/s), fan-out (100 subscribers joining a 2,000-token run paced at 1 ms: GET
/runs/{id}/events vs WS /runs/{id}/ws; delivered events/s, gaps, duplicates).

Writes tools/bench/results/websocket.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from client import StreamResult, calibrate, stream
from run_all import (
    HERE,
    Meter,
    Server,
    join_paced_run,
    orders,
    prepare_bench_process,
    server,
    summarize,
)
from ws_client import calibrate as ws_calibrate
from ws_client import session

PC = time.perf_counter
TRANSPORTS = ["sse", "ws", "ws+deflate"]
AGENTS = {"sync": "ws", "async": "ws-async"}  # the server names of run_all.DOCKFILES


async def _one(
    srv: Server, transport: str, sse: tuple[str, str, Any], ws: tuple[str, Any]
) -> StreamResult:
    if transport == "sse":
        method, path, body = sse
        return await stream(srv.target, method, path, body, timeout=120)
    path, first = ws
    result = await session(srv.target, path, first, deflate=transport == "ws+deflate")
    assert result.close_code == 1000, result
    assert result.deflate == (transport == "ws+deflate"), result
    return result


async def flood(srv: Server, transport: str, tokens: int = 20_000) -> dict[str, float]:
    body = {"tokens": tokens}
    with Meter(srv.pid) as meter:
        result = await _one(srv, transport, ("POST", "/invoke/stream", body), ("/invoke/ws", body))
    assert result.tokens == tokens and result.terminal == "complete", result
    assert not result.gaps and not result.duplicates, result
    return {
        "events_per_s": result.events / result.wall,
        "first_token_ms": result.first_token_ms or 0.0,
        "reads_per_event": result.reads / result.events,
        "bytes_per_event": result.nbytes / result.events,
        **meter.shares(),
    }


async def fanout(
    srv: Server, transport: str, tokens: int = 2000, subscribers: int = 100, pace: float = 0.001
) -> dict[str, float]:
    def subscribe(run_id: str) -> Awaitable[StreamResult]:
        return _one(
            srv,
            transport,
            ("GET", f"/runs/{run_id}/events", None),
            (f"/runs/{run_id}/ws", None),
        )

    return await join_paced_run(srv, subscribe, tokens, subscribers, pace)


Workload = Callable[..., Awaitable[dict[str, float]]]
WORKLOADS: dict[str, tuple[Workload, str, str, list[str]]] = {
    # name: (function, headline, unit, details)
    "flood, 20,000 tokens": (
        flood,
        "events_per_s",
        "events/s",
        ["first_token_ms", "reads_per_event", "bytes_per_event"],
    ),
    "fan-out, 100 subscribers": (
        fanout,
        "delivered_per_s",
        "events/s",
        ["complete", "gaps", "duplicates"],
    ),
}


async def warm(srv: Server) -> None:
    for transport in TRANSPORTS:
        await flood(srv, transport, 2000)
        await fanout(srv, transport, 200, 10)


def measure(rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for agent, name in AGENTS.items():
        with server(name) as srv:
            runs: dict[str, dict[str, list[dict[str, float]]]] = {
                workload: {transport: [] for transport in TRANSPORTS} for workload in WORKLOADS
            }

            async def scenario(srv: Server = srv, runs: Any = runs) -> None:
                await warm(srv)
                for workload, (function, *_) in WORKLOADS.items():
                    for order in orders(TRANSPORTS, rounds):
                        for transport in order:
                            runs[workload][transport].append(await function(srv, transport))

            asyncio.run(scenario())
        for workload, (_, headline, _, _) in WORKLOADS.items():
            summaries = {t: summarize(values) for t, values in runs[workload].items()}
            sse = summaries["sse"][headline]
            out[f"{workload} [{agent}]"] = {
                "workload": workload,
                "summaries": summaries,
                "ratio": {t: summaries[t][headline] / sse for t in TRANSPORTS[1:]},
            }
            print(
                f"{workload} [{agent}]: ws/sse "
                + ", ".join(
                    f"{t} {r:.2f}" for t, r in out[f"{workload} [{agent}]"]["ratio"].items()
                )
            )
            sys.stdout.flush()
    return out


def _cell(summary: dict[str, Any], key: str) -> str:
    value, spread = summary[key], summary[f"{key}_spread"]
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} ±{100 * spread:.0f}%"


def table(results: dict[str, Any]) -> str:
    head = f"{'workload':38} {'metric':16}" + "".join(f"{t:>18}" for t in TRANSPORTS)
    head += "   ws/sse  ws+deflate/sse"
    lines = [head, "-" * len(head)]
    for label, entry in results["workloads"].items():
        _, headline, unit, details = WORKLOADS[entry["workload"]]
        summaries = entry["summaries"]
        cells = "".join(f"{_cell(summaries[t], headline):>18}" for t in TRANSPORTS)
        ratios = entry["ratio"]
        lines.append(
            f"{label:38} {unit:16}{cells}   {ratios['ws']:6.2f}  {ratios['ws+deflate']:14.2f}"
        )
        for key in details:
            cells = "".join(f"{_cell(summaries[t], key):>18}" for t in TRANSPORTS)
            lines.append(f"{'':38} {key:16}{cells}")
        shares = "".join(
            f"{summaries[t]['client_cpu']:>12.2f}/{summaries[t]['server_cpu']:.2f}"
            for t in TRANSPORTS
        )
        lines.append(f"{'':38} {'CPU client/server':16}{shares}")
    alone = results["client_alone"]
    lines.append(
        "client parsing alone (no server), events/s in 64 KiB reads: "
        f"sse {alone['sse']:,.0f}, ws {alone['ws']:,.0f}; one read per event: "
        f"sse {alone['sse_one_read_per_event']:,.0f}, ws {alone['ws_one_read_per_event']:,.0f}; "
        f"the websockets library's framing alone {alone['websockets_library']:,.0f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "websocket.json")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    prepare_bench_process()
    run(rounds, args.out)


def run(rounds: int, out: Path) -> dict[str, Any]:
    """Measure, print the table, write `out` (also called by `bench:all`)."""
    sse_alone, ws_alone = calibrate(), ws_calibrate()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rounds": rounds,
        "client_alone": {
            "sse": sse_alone.events_per_s,
            "sse_one_read_per_event": sse_alone.events_per_s_one_read_per_event,
            "ws": ws_alone.events_per_s,
            "ws_one_read_per_event": ws_alone.events_per_s_one_read_per_event,
            "websockets_library": ws_alone.library_events_per_s,
        },
    }
    started = PC()
    results["workloads"] = measure(rounds)
    results["seconds"] = PC() - started
    print()
    print(table(results))
    print(f"({results['seconds']:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()

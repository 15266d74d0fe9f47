"""What the runtime itself spends per streamed token, above the agent's own cost.

    hatch run bench:tokens [--targets langgraph,async,sync] [--tokens 20000] [--rounds 5]
                           [--profile] [--baseline DIR] [--out FILE]

For each target a real server (`dockrion-runtime serve`, uvicorn, loopback) streams one
`POST /invoke/stream` of `--tokens` tokens per round to the raw-socket client of
`client.py`; the server's CPU time over that request (/proc/<pid>/stat) divided by the
tokens is its CPU per token. Rounds interleave the targets (the order alternates).

`langgraph` serves `suite/chat_graph.py`: a `MessagesState` graph whose langchain-core
chat model streams `"t<i> "` tokens without network. In the same rounds this process runs
that graph alone, with the stream modes the runtime asks for (`messages`, `custom`,
`updates`, `values`, subgraphs) and no server, and measures its CPU per token: the
graph's own cost. The runtime's own cost per token is the difference. `async` and `sync`
are the handler agents of `suite/agent.py`, whose own cost per token is negligible.

`--baseline DIR` adds, for each target, the same server running the packages of another
checkout (`DIR/packages/*`, e.g. `git archive main packages | tar -x -C DIR`), named
`<target>@base`, in the same interleaved rounds: an A/B comparison of a change.

`--callgrind N` counts instructions instead of CPU time (deterministic whatever the load):
each langgraph server runs under `valgrind --tool=callgrind --instr-atstart=no`, warms up,
and is instrumented over one stream of N tokens only (`callgrind_control -i on/off`); the
graph alone is counted the same way in a process of its own. Valgrind runs the program
about 50 times slower, so what depends on time (how many events one write carries) is
counted as it happens at that speed: use it for the cost of each event's path, the CPU
time for batching.

`--profile` then samples each server with py-spy over more floods and splits its CPU per
token by where the sample was: the innermost frame that belongs to a known part of the
path (the graph, the adapter, building the event, redaction, filtering, numbering and
staging, JSON and SSE encoding, the private log, the pump, the HTTP writes, the event
loop), in microseconds per token. py-spy needs ptrace (root, or ptrace_scope 0).
Shares are of samples, so a loaded machine changes the absolute figures but little the
split. Decide changes by the CPU per token, never by wall-clock throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from client import stream
from run_all import SUITE, Server, cpu_seconds, orders, server

# Where a sample was, by file: the first rule (in this order) whose marker the innermost
# classified frame's file contains.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("adapter (agents/)", ("dockrion_runtime/agents/",)),
    ("redaction", ("engine/redaction.py",)),
    ("supervisor, policies", ("dockrion_runtime/engine/",)),
    ("event JSON (pydantic)", ("dockrion_events/models.py",)),
    ("SSE frame, record", ("dockrion_events/record.py", "dockrion_events/sse.py")),
    ("filter", ("dockrion_events/filter.py",)),
    ("event building", ("dockrion_events/_builders.py",)),
    (
        "emit, numbering, staging",
        (
            "dockrion_events/_async_emit.py",
            "dockrion_events/_sync_emit.py",
            "dockrion_events/_emit_guards.py",
            "dockrion_events/_staging.py",
            "dockrion_events/_batch_stage.py",
            "dockrion_events/_context_state.py",
            "dockrion_events/context.py",
            "dockrion_events/current_context.py",
        ),
    ),
    ("private log", ("dockrion_events/private_log.py", "dockrion_events/_waiting.py")),
    ("run log (bus, backends)", ("dockrion_events/",)),
    ("pump, SSE writes (wire/)", ("dockrion_runtime/wire/",)),
    (
        "HTTP layer, socket writes",
        ("dockrion_runtime/serve/", "dockrion_runtime/request/", "uvicorn/", "starlette/"),
    ),
    ("endpoint", ("dockrion_runtime/",)),
    ("graph (langgraph, langchain-core)", ("langgraph/", "langchain_core/", "chat_graph.py")),
    ("agent (suite/agent.py)", ("suite/agent.py",)),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/", "threading.py")),
]
OTHER = "other"

MODES = ["messages", "custom", "updates", "values"]


@contextlib.contextmanager
def started(name: str, baseline: Path | None, prefix: list[str] | None = None) -> Any:
    """Our server `name`, or `name@base` served from the packages under `baseline`;
    `prefix` runs it under another program (valgrind)."""
    kind, _, base = name.partition("@")
    saved = os.environ.get("PYTHONPATH")
    if base:
        assert baseline is not None
        packages = [str(baseline / "packages" / p) for p in ("events", "runtime", "schema")]
        os.environ["PYTHONPATH"] = os.pathsep.join(packages)  # before the installed ones
    try:
        cm = server(kind, prefix=prefix)
        srv = cm.__enter__()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield Server(name, srv.url, srv.pid, srv.process)
    finally:
        cm.__exit__(None, None, None)


def body(target: str, tokens: int) -> dict[str, Any]:
    if target.partition("@")[0] == "langgraph":
        return {"messages": [{"role": "user", "content": f"n={tokens}"}]}
    return {"tokens": tokens}


async def flood(srv: Server, tokens: int) -> float:
    """One stream of `tokens` tokens; the server's CPU seconds per token."""
    before = cpu_seconds(srv.pid)
    result = await stream(srv.target, "POST", "/invoke/stream", body(srv.name, tokens))
    spent = cpu_seconds(srv.pid) - before
    assert result.status == 200 and result.tokens == tokens, result
    assert result.terminal == "complete" and not result.gaps and not result.duplicates, result
    return spent / tokens


async def graph_cost(graph: Any, tokens: int) -> float:
    """The graph alone, in this process, with the runtime's stream modes: CPU s per token."""
    payload = {"messages": [{"role": "user", "content": f"n={tokens}"}]}
    before = time.process_time()
    seen = 0
    async for _namespace, mode, _chunk in graph.astream(payload, stream_mode=MODES, subgraphs=True):
        seen += mode == "messages"
    spent = time.process_time() - before
    assert seen >= tokens, seen  # the chunks, and the message the node returns
    return spent / tokens


def classify(stack: str) -> tuple[str, str]:
    """A py-spy collapsed stack (outermost first) -> (part, innermost function)."""
    frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
    leaf = frames[-1] if frames else "?"
    for frame in reversed(frames):
        where = frame.partition(" (")[2]
        for part, markers in PARTS:
            if any(marker in where for marker in markers):
                return part, leaf
    return OTHER, leaf


def split(collapsed: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    parts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        part, leaf = classify(stack)
        if part == "event loop (asyncio, uvloop)" and leaf.startswith(("select ", "poll ")):
            continue  # idle
        total += count
        parts[part] += count
        name, _, where = leaf.partition(" (")
        leaves[f"{name} ({where.rsplit('/', 1)[-1].rsplit(':', 1)[0]})"] += count
    return parts, leaves, total


async def profiled_floods(srv: Server, tokens: int, floods: int) -> float:
    spent = [await flood(srv, tokens) for _ in range(floods)]
    return statistics.median(spent)


def profile(srv: Server, tokens: int, floods: int, rate: int) -> dict[str, Any]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        collapsed = Path(tmp) / "stacks.txt"
        recorder = subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(srv.pid), "--rate", str(rate)),
                *("--format", "raw", "--output", str(collapsed), "--threads", "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(1.0)  # py-spy attaches
            per_token = asyncio.run(profiled_floods(srv, tokens, floods))
        finally:
            recorder.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            _, errors = recorder.communicate(timeout=60)
        if not collapsed.exists():
            raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')}")
        parts, leaves, total = split(collapsed)
    us = per_token * 1e6
    return {
        "server_us_per_token": round(us, 1),
        "samples": total,
        "parts_us_per_token": {k: round(us * n / total, 1) for k, n in parts.most_common()},
        "top_functions_us_per_token": {
            k: round(us * n / total, 1) for k, n in leaves.most_common(25)
        },
    }


def _callgrind_total(out: Path) -> int:
    """The instructions counted in one dump (0 for the empty one made at exit)."""
    for line in out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")) and int(line.split()[1]):
            return int(line.split()[1])
    return 0


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def counted_server(name: str, baseline: Path | None, tokens: int, tmp: Path) -> int:
    """Instructions the server spends on one stream of `tokens` tokens."""
    out = tmp / f"{name.replace('@', '-')}.%p.out"
    prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with started(name, baseline, prefix) as srv:
        asyncio.run(flood(srv, 200))
        _control("-i", "on", str(srv.pid))
        asyncio.run(flood(srv, tokens))
        _control("-i", "off", str(srv.pid))
        _control("-d", str(srv.pid))
        dumps = sorted(tmp.glob(f"{name.replace('@', '-')}.{srv.pid}.out.*"))
        return _callgrind_total(dumps[-1])


def counted_graph(tokens: int, tmp: Path) -> int:
    """Instructions the graph alone spends on `tokens` tokens, in a process of its own."""
    out = tmp / "graph.%p.out"
    command = [
        *("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"),
        *(sys.executable, __file__, "--graph-alone", str(tokens)),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    dumps = sorted(tmp.glob("graph.*.out*"))
    return max(_callgrind_total(d) for d in dumps)


def graph_alone(tokens: int) -> None:
    """Run under callgrind by `counted_graph`: instrumented over the measured stream only."""
    sys.path.insert(0, str(SUITE))
    from chat_graph import build

    graph = build()
    asyncio.run(graph_cost(graph, 200))
    _control("-i", "on", str(os.getpid()))
    asyncio.run(graph_cost(graph, tokens))
    _control("-i", "off", str(os.getpid()))
    _control("-d", str(os.getpid()))


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    tokens = args.callgrind
    names = ["langgraph", *(["langgraph@base"] if args.baseline else [])]
    with tempfile.TemporaryDirectory() as tmp:
        graph = counted_graph(tokens, Path(tmp)) / tokens
        result: dict[str, Any] = {"tokens": tokens, "graph_instructions_per_token": round(graph)}
        for name in names:
            server_ir = counted_server(name, args.baseline, tokens, Path(tmp)) / tokens
            result[name] = {
                "server_instructions_per_token": round(server_ir),
                "runtime_instructions_per_token": round(server_ir - graph),
            }
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = args.targets.split(",")
    if args.baseline is not None:
        targets = [t for name in targets for t in (name, f"{name}@base")]
    graph = None
    if "langgraph" in targets:
        sys.path.insert(0, str(SUITE))
        from chat_graph import build

        graph = build()
    results: dict[str, Any] = {"tokens": args.tokens, "rounds": args.rounds, "targets": {}}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(started(name, args.baseline)) for name in targets}
        figures: dict[str, list[float]] = {name: [] for name in targets}
        own: dict[str, list[float]] = {}
        for srv in servers.values():
            asyncio.run(flood(srv, 2000))  # imports, caches, pools: warm before timing
        if graph is not None:
            asyncio.run(graph_cost(graph, 2000))
        for order in orders(targets, args.rounds):
            for name in order:
                figures[name].append(asyncio.run(flood(servers[name], args.tokens)))
                if name.startswith("langgraph") and graph is not None:
                    own.setdefault(name, []).append(asyncio.run(graph_cost(graph, args.tokens)))
        for name in targets:
            entry: dict[str, Any] = {
                "server_us_per_token": round(statistics.median(figures[name]) * 1e6, 1),
                "rounds_us": [round(v * 1e6, 1) for v in figures[name]],
            }
            if name in own:
                # the difference per round (the graph measured right after its flood)
                runtime = [s - g for s, g in zip(figures[name], own[name], strict=True)]
                entry["graph_us_per_token"] = round(statistics.median(own[name]) * 1e6, 1)
                entry["graph_rounds_us"] = [round(v * 1e6, 1) for v in own[name]]
                entry["runtime_us_per_token"] = round(statistics.median(runtime) * 1e6, 1)
            results["targets"][name] = entry
        if args.profile:
            for name, srv in servers.items():
                results["targets"][name]["profile"] = profile(
                    srv, args.tokens, args.profile_floods, args.rate
                )
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"{results['tokens']} tokens per stream, {results['rounds']} interleaved rounds"]
    for name, entry in results["targets"].items():
        line = f"{name}: server {entry['server_us_per_token']} us/token"
        if "graph_us_per_token" in entry:
            line += (
                f", graph alone {entry['graph_us_per_token']} us/token, runtime's own "
                f"{entry['runtime_us_per_token']} us/token"
            )
        lines.append(line + f"  (rounds {entry['rounds_us']})")
        prof = entry.get("profile")
        if prof:
            lines.append(
                f"  profile: {prof['samples']} samples, server {prof['server_us_per_token']} "
                "us/token over the profiled floods"
            )
            lines += [
                f"    {us:7.1f} us  {part}" for part, us in prof["parts_us_per_token"].items()
            ]
            lines.append("  innermost functions:")
            lines += [
                f"    {us:7.1f} us  {fn}" for fn, us in prof["top_functions_us_per_token"].items()
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="langgraph,async,sync")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="split the cost with py-spy")
    parser.add_argument("--profile-floods", type=int, default=3)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--baseline", type=Path, help="A/B against the packages here")
    parser.add_argument("--callgrind", type=int, metavar="N", help="count instructions")
    parser.add_argument("--graph-alone", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):  # the client on the same loop as the servers
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.graph_alone:
        graph_alone(args.graph_alone)
        return
    if args.callgrind:
        results = callgrind(args)
        print(json.dumps(results, indent=1))
    else:
        results = run(args)
        print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

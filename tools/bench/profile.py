"""Where a server spends its time under one benchmark workload: py-spy samples the server
process while the workload repeats, and the samples are summed per function.

    hatch run bench:profile W5 --agent async [--seconds 10] [--rate 500] [--top 40]
    hatch run bench:profile W2 --agent sync --target raw

Prints two tables of the server's samples (the event loop's thread and the agent's worker
threads together; idle samples are left out): "self", where the CPU was when sampled, and
"inclusive", every function on the stack at that moment (each counted once per sample).
Shares are of all non-idle samples. `--raw-out` keeps py-spy's collapsed stacks for a
flame graph (`flamegraph.pl`, speedscope). py-spy needs to attach to another process
(ptrace): root, or `kernel.yama.ptrace_scope` 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import redis_server
from run_all import DOCKFILES, SPECS, Server, server, warm

PC = time.perf_counter


def _frames(stack: str) -> list[str]:
    """`fn (file:line);fn (file:line)` (outermost first) -> `fn (file)` per frame."""
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        path = where.rsplit(":", 1)[0]
        frames.append(f"{name} ({_short(path)})")
    return frames


def _short(path: str) -> str:
    for marker in ("site-packages/", "packages/runtime/", "packages/events/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return Path(path).name


def summarize(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        # `thread (id)` first frame, `process` frames: py-spy's, not the program's
        frames = [f for f in _frames(stack) if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples (not idle)", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


async def _repeat(srv: Server, key: str, seconds: float) -> int:
    spec = next(s for s in SPECS if s.key == key)
    await warm(spec, srv)
    rounds = 0
    deadline = PC() + seconds
    while PC() < deadline and rounds < 10_000:
        await spec.function(srv)
        rounds += 1
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=[s.key for s in SPECS])
    parser.add_argument("--agent", choices=sorted(DOCKFILES), default="async")
    parser.add_argument("--target", choices=("ours", "raw"), default="ours")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw-out", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    name = "raw" if args.target == "raw" else args.agent
    with contextlib.suppress(ImportError):  # the client on the same loop as the servers
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with tempfile.TemporaryDirectory() as tmp:
        collapsed = args.raw_out or Path(tmp) / "stacks.txt"
        redis: contextlib.AbstractContextManager[str | None] = (
            redis_server() if name == "redis" else contextlib.nullcontext(None)
        )
        with redis as redis_url, server(name, redis_url=redis_url) as srv:
            recorder = subprocess.Popen(
                [
                    *(py_spy, "record", "--pid", str(srv.pid), "--rate", str(args.rate)),
                    *("--format", "raw", "--output", str(collapsed), "--threads"),
                    *("--nonblocking", "--duration", str(int(args.seconds) + 1)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.5)  # py-spy attaches
            rounds = asyncio.run(_repeat(srv, args.workload, args.seconds))
            _, errors = recorder.communicate(timeout=60)
            if recorder.returncode != 0:
                raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')}")
        print(f"{args.workload} on {name}: {rounds} repetitions in {args.seconds:g} s")
        print(summarize(collapsed, args.top))


if __name__ == "__main__":
    main()

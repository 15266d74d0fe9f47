"""A rolling restart under load: three `serve` instances on one Redis (each also a worker
of the run queue, `retry: true`), `--runs` background runs of `--seconds` seconds each;
then each instance in turn gets SIGTERM (a short grace period), exits, and starts again
on its port. Every run must complete, every log be contiguous with one terminal event.
Prints a transcript with the counts:

    hatch run bench:python tools/bench/rolling_restart.py [--runs 50] [--seconds 10,30]

`packages/runtime/tests/test_queue_rolling_restart.py` runs it at a small scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, redis_server

AGENT = """
import time

def paced(payload, context):
    # `seconds` of work, a token every 0.2 s; a new attempt starts over (retry: true)
    steps = int(float(payload["seconds"]) / 0.2)
    for step in range(steps):
        context.sync_emit_token(f"{step} ")
        time.sleep(0.2)
    return {"steps": steps}
"""

TERMINAL = ("complete", "error", "cancelled")


def _dockfile(folder: Path, redis_url: str) -> Path:
    (folder / "rolling_agent.py").write_text(AGENT)
    dockfile = folder / "Dockfile.yaml"
    dockfile.write_text(
        textwrap.dedent(f"""\
            version: "1.0"
            agent: {{name: rolling, handler: "rolling_agent:paced"}}
            io_schema: {{input: {{type: object}}}}
            expose: {{host: 127.0.0.1}}
            streaming:
              backend: redis
              redis:
                url: {redis_url}
                key_prefix: r{uuid.uuid4().hex[:8]}
                queue: {{retry: true, max_attempts: 10, claim_after_seconds: 2}}
            """)
    )
    return dockfile


def _start(dockfile: Path, port: int, grace: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockrion_runtime",
            "serve",
            str(dockfile),
            "--port",
            str(port),
            "--grace-period",
            str(grace),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _ready(port: int, process: subprocess.Popen[bytes]) -> str:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the instance on {port} exited")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the instance on {port} is not ready")


def _log(url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's whole log (it has ended)."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


def rolling_restart(
    redis_url: str,
    folder: Path,
    *,
    runs: int,
    seconds: tuple[float, float],
    grace: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run the scenario; returns the counts (runs, completed, contiguous, attempts>1)."""
    dockfile = _dockfile(folder, redis_url)
    ports = [free_port() for _ in range(3)]
    processes = [_start(dockfile, port, grace) for port in ports]
    try:
        urls = [_ready(port, process) for port, process in zip(ports, processes, strict=True)]
        say(f"3 instances ready on ports {ports}; {runs} runs of {seconds[0]:g}-{seconds[1]:g} s")
        pick = random.Random(7)
        run_ids = []
        for index in range(runs):
            body = {"seconds": round(pick.uniform(*seconds), 1)}
            created = httpx.post(f"{urls[index % 3]}/runs", json=body, timeout=30)
            created.raise_for_status()
            run_ids.append(created.json()["run_id"])
        time.sleep(min(seconds) / 2)
        for index, port in enumerate(ports):
            started = time.monotonic()
            processes[index].send_signal(signal.SIGTERM)
            code = processes[index].wait(120)
            stopped = time.monotonic() - started
            processes[index] = _start(dockfile, port, grace)
            _ready(port, processes[index])
            say(
                f"instance {index + 1} (port {port}): SIGTERM, exited {code} after "
                f"{stopped:.1f} s, started again and ready"
            )
        deadline = time.monotonic() + 3 * max(seconds) + 120
        statuses: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for run_id in run_ids:
                if run_id not in statuses or statuses[run_id]["status"] in ("ACCEPTED", "RUNNING"):
                    statuses[run_id] = httpx.get(f"{urls[0]}/runs/{run_id}", timeout=30).json()
            if all(s["status"] not in ("ACCEPTED", "RUNNING") for s in statuses.values()):
                break
            time.sleep(1)
        counts = {"runs": runs, "completed": 0, "contiguous": 0, "retried": 0}
        for run_id in run_ids:
            status = statuses[run_id]
            counts["completed"] += status["status"] == "COMPLETED"
            counts["retried"] += int(status.get("attempt", 1)) > 1
            events = _log(urls[run_ids.index(run_id) % 3], run_id)
            sequences = [event["sequence"] for event in events]
            terminal = [event for event in events if event["type"] in TERMINAL]
            whole = sequences == list(range(len(events)))
            if whole and len(terminal) == 1 and events[-1] in terminal:
                counts["contiguous"] += 1
        say(
            f"{counts['completed']}/{runs} completed, {counts['contiguous']}/{runs} logs "
            f"contiguous with one terminal event, {counts['retried']} runs on a later attempt"
        )
        return counts
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", default="10,30", help="a run's length, low,high")
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args()
    low, high = (float(value) for value in args.seconds.split(","))
    with redis_server() as url, tempfile.TemporaryDirectory() as folder:
        if url is None:
            raise SystemExit("redis-server is not installed")
        counts = rolling_restart(
            url, Path(folder), runs=args.runs, seconds=(low, high), grace=args.grace
        )
    raise SystemExit(0 if counts["completed"] == counts["contiguous"] == args.runs else 1)


if __name__ == "__main__":
    main()

"""A Redis Sentinel failover in the middle of a run, repeated: a `serve` instance on a
primary found through three real Sentinels runs an agent that streams tokens; a
subscriber follows the run over SSE (resuming with Last-Event-ID when its stream is cut);
the primary is killed with SIGKILL mid-run, without waiting for its replica to catch up,
so a failover may lose acknowledged events. Every repetition must end with exactly one
terminal event the subscriber receives (the run completes, or ends with an error naming
the events the failover lost), never silence. Prints one line per repetition:

    hatch run bench:python tools/bench/sentinel_failover.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from harness import RedisSentinels, free_port

AGENT = """
import time

def stream(payload, context):
    for i in range(int(payload["tokens"])):
        context.sync_emit_token(f"{i} ")
        time.sleep(0.02)
    return {"tokens": int(payload["tokens"])}
"""

TERMINAL = ("complete", "error", "cancelled")


def _follow(url: str, run_id: str, seconds: float) -> tuple[list[dict[str, Any]], int, float]:
    """The events a subscriber receives (resuming when cut), its connections, and the
    longest time it went without an event."""
    events: list[dict[str, Any]] = []
    connections = 0
    longest = 0.0
    last = time.monotonic()
    deadline = last + seconds
    while time.monotonic() < deadline:
        connections += 1
        headers = {"Last-Event-ID": str(events[-1]["sequence"])} if events else {}
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream(
                "GET", f"{url}/runs/{run_id}/events", headers=headers, timeout=10
            ) as response,
        ):
            if response.status_code != 200:
                time.sleep(0.2)
                continue
            for line in response.iter_lines():
                if line.startswith("data:"):
                    now = time.monotonic()
                    longest, last = max(longest, now - last), now
                    events.append(json.loads(line[5:]))
                    if events[-1]["type"] in TERMINAL:
                        return events, connections, longest
        time.sleep(0.1)
    return events, connections, max(longest, time.monotonic() - last)


def once(folder: Path, tokens: int) -> dict[str, Any]:
    (folder / "redis").mkdir()
    sentinels = RedisSentinels(folder / "redis", password=secrets.token_hex(8))
    sentinels.start()
    (folder / "failover_agent.py").write_text(AGENT)
    dockfile = folder / "Dockfile.yaml"
    addresses = ", ".join(f'"{address}"' for address in sentinels.addresses)
    dockfile.write_text(
        textwrap.dedent(f"""\
            version: "1.0"
            agent: {{name: failover, handler: "failover_agent:stream"}}
            io_schema: {{input: {{type: object}}}}
            expose: {{host: 127.0.0.1}}
            streaming:
              backend: redis
              redis:
                sentinel:
                  service_name: {sentinels.SERVICE}
                  sentinels: [{addresses}]
                  password: "{sentinels.password}"
            """)
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "serve.log").open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        run_id = httpx.post(f"{url}/runs", json={"tokens": tokens}, timeout=30).json()["run_id"]
        result: dict[str, Any] = {}

        def kill_later() -> None:
            time.sleep(1.0)
            old = sentinels.kill_primary()  # no WAIT: the replica may miss the last writes
            killed = time.monotonic()
            sentinels.wait_for_failover(old)
            result["failover_s"] = time.monotonic() - killed

        import threading

        killer = threading.Thread(target=kill_later, daemon=True)
        killer.start()
        events, connections, longest = _follow(url, run_id, 150)
        killer.join(90)
        sequences = [event["sequence"] for event in events]
        terminal = [event for event in events if event["type"] in TERMINAL]
        end = terminal[-1] if terminal else {}
        result.update(
            events=len(events),
            contiguous=sequences == list(range(len(events))),
            terminals=len(terminal),
            end=f"{end.get('type')} {end.get('code', '')}".strip() or "none (silence)",
            lost=(end.get("details") or {}).get("lost"),
            connections=connections,
            longest_silence_s=round(longest, 1),
        )
        return result
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
        sentinels.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=300, help="tokens, one per 20 ms")
    args = parser.parse_args()
    good = 0
    for repetition in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as folder:
            result = once(Path(folder), args.tokens)
        ok = result["terminals"] == 1 and result["contiguous"]
        good += ok
        print(f"{repetition:2d}: {'ok ' if ok else 'BAD'} {result}", flush=True)
    print(f"{good}/{args.repeat} runs ended with exactly one terminal event, logs contiguous")
    raise SystemExit(0 if good == args.repeat else 1)


if __name__ == "__main__":
    main()

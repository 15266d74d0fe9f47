"""What redacting a token stream costs: one `password=` then N one-character tokens (a
match that never ends), with `redact_patterns: ['password=\\S+']`.

    hatch run python tools/bench/redaction.py [--tokens 80000]

Prints (1) the redactor alone, in this process: seconds for the whole stream and the most
characters it held back; (2) a real server (`dockrion-runtime serve`, another process)
streaming that run (an async agent: redaction runs on the event loop) on
`/invoke/stream` while this process asks `/health` every 20 ms: the
stream's time and the slowest `/health` answer (the event loop blocked), without and with
the pattern.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from harness import free_port

AGENT = """
async def handle(payload, context):
    await context.emit_token("say password=")
    for _ in range(payload["tokens"]):
        await context.emit_token("x")
    await context.emit_token(" done")
    return {"ok": True}
"""

DOCKFILE = """
version: "1.0"
agent: {name: redaction-bench, handler: "bench_agent:handle"}
io_schema: {}
expose: {host: 127.0.0.1, port: PORT}
policies:
  safety:
    redact_patterns: ['password=\\S+']
"""


def in_process(tokens: int) -> tuple[float, int]:
    from dockrion_runtime.engine import policies

    redaction: Any
    if hasattr(policies.OutputPolicy, "run_redaction"):
        from dockrion_runtime.engine.redaction import RedactPattern, RunRedaction

        redaction = RunRedaction([RedactPattern("password=\\S+")], False, None)
    else:  # the code before the stream redactor
        old: Any = policies
        redaction = old.TokenRedactor(
            [__import__("re").compile("password=\\S+")], old.UNBOUNDED_HOLD, False
        )
    held = 0
    started = time.perf_counter()
    redaction.feed("say password=")
    for _ in range(tokens):
        redaction.feed("x")
        held = max(held, getattr(redaction, "held", 0) or len(getattr(redaction, "_buffer", "")))
    redaction.feed(" done")
    redaction.flush()
    return time.perf_counter() - started, held


def served(tokens: int, redact: bool = True) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        Path(folder, "bench_agent.py").write_text(textwrap.dedent(AGENT))
        dockfile = Path(folder, "Dockfile.yaml")
        text = DOCKFILE.replace("PORT", str(port))
        dockfile.write_text(text if redact else text.split("policies:")[0])
        server = subprocess.Popen(
            [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile)],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
            done = threading.Event()
            slowest = 0.0
            probes = 0

            def probe() -> None:
                nonlocal slowest, probes
                with httpx.Client(timeout=120) as client:
                    while not done.is_set():
                        started = time.perf_counter()
                        client.get(f"{base}/health")
                        slowest = max(slowest, time.perf_counter() - started)
                        probes += 1
                        time.sleep(0.02)

            prober = threading.Thread(target=probe)
            started = time.perf_counter()
            prober.start()
            response = httpx.post(f"{base}/invoke/stream", json={"tokens": tokens}, timeout=600)
            elapsed = time.perf_counter() - started
            done.set()
            prober.join()
            assert "complete" in response.text
            return elapsed, slowest, probes
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=80_000)
    args = parser.parse_args()
    seconds, held = in_process(args.tokens)
    print(f"redactor alone: {args.tokens} tokens in {seconds:.3f} s, held at most {held} chars")
    for redact in (False, True):
        elapsed, slowest, probes = served(args.tokens, redact)
        print(
            f"server {'with' if redact else 'without'} redaction: /invoke/stream of "
            f"{args.tokens} tokens in {elapsed:.2f} s; slowest of {probes} /health answers "
            f"{slowest * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()

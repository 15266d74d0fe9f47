"""How long a valid caller's first login takes under a flood of bad OAuth 2 tokens.

A real introspection endpoint on loopback answers every token after `--latency` seconds
(0.3 by default); a real runtime (`dockrion-runtime serve`, `auth.mode: oauth2`, a
process of its own) serves a trivial agent. From
127.0.0.1, `--flood` (60) requests with distinct random tokens start at once; 50 ms later
one request with a valid token, from 127.0.0.2, is timed from sending to its answer:

    hatch run bench:python tools/bench/introspection_flood.py [--flood 60] [--latency 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packages/runtime"))
from tests.conftest import kill_server, start_server, write_project

AGENT = "def hello(payload):\n    return {'ok': True}\n"


def endpoint(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            token = urllib.parse.parse_qs(self.rfile.read(length).decode())["token"][0]
            time.sleep(latency)
            active = token.startswith("valid")
            answer = {"active": True, "sub": "alice"} if active else {"active": False}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    server = endpoint(options.latency)
    url = f"http://127.0.0.1:{server.server_address[1]}/introspect"
    extra = (
        f"auth:\n  mode: oauth2\n  oauth2:\n    introspection_url: {url}\n"
        "    client_id_env: ID\n    client_secret_env: SECRET\n"
    )
    os.environ.update({"ID": "runtime", "SECRET": "s"})  # the server's client credentials
    with tempfile.TemporaryDirectory() as folder:
        process, base = start_server(write_project(Path(folder), "hello", extra, AGENT))
        try:
            quiet = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
            for round_ in range(options.rounds):  # a new valid token each round: a first login
                # a valid token the runtime has not seen yet: a first login
                valid = {"Authorization": f"Bearer valid-{round_}"}
                flooders = [
                    threading.Thread(
                        target=lambda: httpx.post(
                            f"{base}/invoke",
                            json={"query": "x"},
                            headers={"Authorization": f"Bearer {secrets.token_hex(16)}"},
                            timeout=120,
                        )
                    )
                    for _ in range(options.flood)
                ]
                for thread in flooders:
                    thread.start()
                time.sleep(0.05)
                started = time.perf_counter()
                answer = quiet.post(
                    f"{base}/invoke", json={"query": "x"}, headers=valid, timeout=120
                )
                took = time.perf_counter() - started
                for thread in flooders:
                    thread.join()
                print(
                    f"round {round_ + 1}: valid first login {took:.3f} s ({answer.status_code}) "
                    f"under {options.flood} bad tokens, introspection latency "
                    f"{options.latency:g} s"
                )
                time.sleep(options.latency * 2)
        finally:
            kill_server(process)
    server.shutdown()


if __name__ == "__main__":
    main()

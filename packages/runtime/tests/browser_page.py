"""A page in headless Chromium that reports back: the browser tests' shared harness."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_page(
    page: str,
    profile: Path,
    timeout: float = 120,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Serve `page` on loopback, open it in headless Chromium, and return the first JSON
    report the page POSTs back to its own origin. A POST to `/progress` is not a report:
    it calls `on_progress` with its JSON (the test acting at a point the page reached)."""
    assert CHROMIUM is not None
    reports: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page.encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if self.path == "/progress":
                if on_progress is not None:
                    on_progress(body)
            else:
                reports.append(body)
                arrived.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    # These flags keep Chromium from reaching for the network (closed here) on its own.
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"http://127.0.0.1:{site.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert arrived.wait(timeout), "the page never reported (the browser did not finish)"
    finally:
        browser.kill()
        browser.wait(30)
        site.shutdown()
    return reports[0]

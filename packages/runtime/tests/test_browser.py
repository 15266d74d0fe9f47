"""A real browser: EventSource in headless Chromium, cut mid-run, resuming by itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

Serve = Callable[..., str]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><meta charset="utf-8"><title>resume</title>
<script>
const seen = [];
let opens = 0;
const source = new EventSource("EVENTS_URL");
source.onopen = () => { opens += 1; };
function record(e) {
  // A dropped connection fires a plain `error` Event (not a MessageEvent): not ours.
  if (!(e instanceof MessageEvent)) return;
  seen.push({id: e.lastEventId, type: e.type});
  if (e.type === "complete") {
    source.close();
    fetch("/report", {method: "POST", body: JSON.stringify({seen, opens})});
  }
}
for (const name of ["started", "token", "complete", "error", "cancelled"]) {
  source.addEventListener(name, record);
}
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_event_source_resumes_after_cuts_without_loss_or_repeat(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve("slow_tokens")
    run_id = httpx.post(f"{url}/runs", json={"query": "x", "count": 30}).json()["run_id"]
    # Every subscription lasts one second, so the browser is cut off several times mid-run.
    page = PAGE.replace("EVENTS_URL", f"{url}/runs/{run_id}/events?timeout=1")
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
            reports.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    assert CHROMIUM is not None
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
            f"--user-data-dir={tmp_path / 'profile'}",
            f"http://127.0.0.1:{site.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert arrived.wait(120), "the page never reported (browser did not finish the run)"
    finally:
        browser.kill()
        browser.wait(30)
        site.shutdown()
    report = reports[0]
    ids = [int(item["id"]) for item in report["seen"]]
    assert ids == list(range(32)), ids  # started, 30 tokens, complete: each exactly once
    assert report["seen"][-1]["type"] == "complete"
    assert report["opens"] >= 2, "the stream was never cut and resumed"

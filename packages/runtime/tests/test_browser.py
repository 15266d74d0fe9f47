"""A real browser: EventSource in headless Chromium, cut mid-run, resuming by itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .browser_page import CHROMIUM, run_page

Serve = Callable[..., str]

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
    report = run_page(page, tmp_path / "profile")
    ids = [int(item["id"]) for item in report["seen"]]
    assert ids == list(range(32)), ids  # started, 30 tokens, complete: each exactly once
    assert report["seen"][-1]["type"] == "complete"
    assert report["opens"] >= 2, "the stream was never cut and resumed"

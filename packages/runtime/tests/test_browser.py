"""A real browser: EventSource in headless Chromium, cut mid-run, resuming by itself; and the
EventSource recipe of docs/recipes.md, run as it is on the page."""

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


RECIPES = Path(__file__).resolve().parents[3] / "docs" / "recipes.md"
# Collects what the recipe logs, and reports when it logs that the run is done.
HARNESS = """<!doctype html><meta charset="utf-8"><title>recipe</title>
<script>
const lines = [];
// an exception thrown by a handler of the recipe is a line of the report too
window.addEventListener("error", (e) => lines.push(["exception", e.message]));
for (const level of ["log", "error"]) {
  console[level] = (...parts) => {
    lines.push([level, parts.map(p => typeof p === "string" ? p : JSON.stringify(p)).join(" ")]);
    if (level === "error" || parts[0] === "Done:") {
      // what the recipe appended to the body (its text nodes, not these scripts)
      const text = [...document.body.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
        .map(n => n.textContent).join("");
      fetch("/report", {method: "POST", body: JSON.stringify({lines, text})});
    }
  };
}
</script>
<body></body>
<script>
RECIPE
</script>"""


def event_source_recipe() -> str:
    """The JavaScript block of the EventSource recipe, as it is on the page."""
    text = RECIPES.read_text()
    section = text[text.index("### EventSource (browsers)") :]
    start = section.index("```javascript\n") + len("```javascript\n")
    return section[start : section.index("```", start)]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_docs_event_source_recipe_follows_a_cut_run_to_the_end(
    serve: Serve, tmp_path: Path
) -> None:
    url = serve("slow_tokens", "expose: {host: 127.0.0.1, cors: {origins: ['*']}}\n")
    run_id = httpx.post(f"{url}/runs", json={"query": "x", "count": 20}).json()["run_id"]
    recipe = event_source_recipe()
    assert "new EventSource(`/runs/${runId}/events`)" in recipe
    # The page is served from another origin than the API: the same path on the server's
    # address, each subscription one second long, so the recipe is cut mid-run.
    recipe = recipe.replace("550e8400-e29b-41d4-a716-446655440000", run_id).replace(
        "`/runs/${runId}/events`", f"`{url}/runs/${{runId}}/events?timeout=1`"
    )
    report = run_page(HARNESS.replace("RECIPE", recipe), tmp_path / "profile")
    assert report["lines"] == [["log", 'Done: {"done":true}']]
    assert report["text"].strip() == "".join(str(i) for i in range(20))  # each token once, in order

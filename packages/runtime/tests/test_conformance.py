"""The seed document's client recipes, run as written against the quickstart agent on a
live server: curl, requests + iter_lines, sseclient-py, httpx-sse and Node's fetch reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
import sseclient
from httpx_sse import connect_sse

from dockrion_runtime import create_app

from .conftest import serve_app

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "Dockfile.yaml"
TERMINAL = ("complete", "error", "cancelled")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_app(create_app(QUICKSTART)) as url:
        yield url


def shell(script: str) -> str:
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def data_events(text: str) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def assert_whole_run(events: list[dict[str, object]], words: int) -> None:
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "started" and events[-1]["type"] == "complete"
    assert sum(e["type"] == "token" for e in events) == words


def test_curl_pattern_a(base_url: str) -> None:
    out = shell(
        f"curl -N -X POST {base_url}/invoke/stream "
        '-H "Content-Type: application/json" -H "X-API-Key: your-key" '
        """-d '{"query": "explain quantum computing"}'"""
    )
    events = data_events(out)
    assert_whole_run(events, 3)
    assert events[-1]["output"] == {"answer": "explain quantum computing", "words": 3}


@pytest.mark.skipif(shutil.which("jq") is None, reason="the seed's recipe pipes into jq")
def test_curl_pattern_b_with_jq_and_resume(base_url: str) -> None:
    out = shell(
        f"""RUN_ID=$(curl -s -X POST {base_url}/runs \\
            -H "Content-Type: application/json" -H "X-API-Key: your-key" \\
            -d '{{"query": "process invoice #1234"}}' | jq -r '.run_id')
        curl -N {base_url}/runs/$RUN_ID/events -H "X-API-Key: your-key"
        echo '---'
        curl -s {base_url}/runs/$RUN_ID -H "X-API-Key: your-key"
        echo
        echo '---'
        curl -N "{base_url}/runs/$RUN_ID/events?from_sequence=5" -H "X-API-Key: your-key"
        """
    )
    live, status, resumed = out.split("---\n")
    assert_whole_run(data_events(live), 3)
    assert json.loads(status)["status"] == "COMPLETED"
    assert [e["sequence"] for e in data_events(resumed)] == [5, 6, 7]


def test_requests_iter_lines(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/invoke/stream",
        json={"query": "explain quantum computing"},
        headers={"X-API-Key": "your-key"},
        stream=True,
        timeout=60,
    )
    events = []
    for line in response.iter_lines():
        if line:
            decoded = line.decode("utf-8")
            if decoded.startswith("data: "):
                event = json.loads(decoded[6:])
                events.append(event)
                if event["type"] in TERMINAL:
                    break
    assert_whole_run(events, 3)


def test_sseclient_py(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/invoke/stream",
        json={"query": "explain quantum computing"},
        headers={"X-API-Key": "your-key"},
        stream=True,
        timeout=60,
    )
    client = sseclient.SSEClient(response)
    pairs = [(event.event, json.loads(event.data)) for event in client.events()]
    assert all(name == data["type"] for name, data in pairs)
    assert_whole_run([data for _, data in pairs], 3)


def test_httpx_sse_with_resume(base_url: str) -> None:
    with httpx.Client(timeout=60) as client:
        run_id = client.post(f"{base_url}/runs", json={"query": "one two three four"}).json()[
            "run_id"
        ]
        with connect_sse(client, "GET", f"{base_url}/runs/{run_id}/events") as source:
            first = [(sse.id, sse.event) for sse in source.iter_sse()]
        with connect_sse(
            client, "GET", f"{base_url}/runs/{run_id}/events", headers={"Last-Event-ID": "4"}
        ) as source:
            rest = [(sse.id, sse.event) for sse in source.iter_sse()]
    assert [i for i, _ in first] == [str(n) for n in range(len(first))]
    assert rest == first[5:]


NODE_CLIENT = """
async function streamInvoke(payload) {
  const response = await fetch('URL/invoke/stream', {
    method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-API-Key': 'your-key'},
    body: JSON.stringify(payload)
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const seen = [];
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split('\\n');
    buffer = lines.pop();
    for (const line of lines) {
      if (line.startsWith('data: ')) {
        const event = JSON.parse(line.slice(6));
        seen.push(event);
        if (['complete', 'error', 'cancelled'].includes(event.type)) {
          return seen;
        }
      }
    }
  }
  return seen;
}
streamInvoke({ query: 'explain quantum computing' }).then((seen) => console.log(JSON.stringify(seen)));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_fetch_reader(base_url: str, tmp_path: Path) -> None:
    script = tmp_path / "client.mjs"
    script.write_text(NODE_CLIENT.replace("URL", base_url))
    result = subprocess.run(
        ["node", str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert_whole_run(json.loads(result.stdout), 3)

"""The A2A JavaScript SDK (`@a2a-js/sdk`, under Node, installed from npm at a pinned
version into the pytest cache once, with the helper the AG-UI client test uses) against a
live server: it resolves the agent card, streams a message to its end (the task, status
updates, the answer's appended chunks, completion) and fetches the task."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockrion_runtime import create_app

from .conftest import serve_app
from .npm_packages import install_npm_package
from .test_a2a import ALICE, ENVIRON, _project, _record

A2A_JS_SDK = "1.3.0"  # @a2a-js/sdk, speaking A2A 1.0
SCRIPT = Path(__file__).with_name("a2a_client.cjs")

# The first test also installs @a2a-js/sdk with npm (given 600 s) in its session fixture.
pytestmark = pytest.mark.timeout(720)


@pytest.fixture(scope="session")
def a2a_js_modules(request: pytest.FixtureRequest) -> Path:
    return install_npm_package(request, "@a2a-js/sdk", A2A_JS_SDK)


@pytest.fixture(scope="module")
def words_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockfile = _project(tmp_path_factory.mktemp("a2a-js"), "words")
    with serve_app(create_app(dockfile, environ=ENVIRON)) as base:
        yield base


def test_the_js_client_streams_a_message_to_completion(
    a2a_js_modules: Path, words_url: str
) -> None:
    assert shutil.which("node")
    config = {"url": words_url, "headers": ALICE, "text": "one two three"}
    done = subprocess.run(
        ["node", str(SCRIPT), str(a2a_js_modules), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout)
    events = seen["events"]
    _record("js_client_stream", [*events, {"getTask": seen["task"]}])
    assert events[0]["$case"] == "task"
    chunks = [
        e["value"]["artifact"]
        for e in events
        if e["$case"] == "artifactUpdate" and e["value"]["artifact"]["artifactId"] == "answer"
    ]
    assert "".join(c["parts"][0]["content"]["value"] for c in chunks) == "one two three "
    states = [e["value"]["status"]["state"] for e in events if e["$case"] == "statusUpdate"]
    assert states[0] == 2 and states[-1] == 3  # WORKING ... COMPLETED
    task = seen["task"]
    assert task["status"]["state"] == 3
    assert task["id"] == events[0]["value"]["id"]

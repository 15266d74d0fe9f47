"""`secrets:`: required ones stop `serve` (MISSING_SECRET), keep a `create_app` app
unready; optional ones warn; env files and defaults reach agent code."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockrion_runtime import create_app

from .conftest import kill_server, serve_app, start_server, write_project

Serve = Callable[..., str]

SECRETS = """
secrets:
  required:
    - {name: DOCKRION_TEST_TOKEN, description: upstream API token}
    - {name: DOCKRION_TEST_MODEL, default: small-model}
  optional:
    - {name: DOCKRION_TEST_OPTIONAL}
"""

READS_ENV = """
import os

def show(payload):
    return {name: os.environ.get(name) for name in
            ("DOCKRION_TEST_TOKEN", "DOCKRION_TEST_MODEL", "DOCKRION_TEST_OPTIONAL")}
"""


def test_serve_refuses_to_start_naming_the_missing_secrets(tmp_path: Path) -> None:
    extra = SECRETS + "    - {name: DOCKRION_TEST_ALSO_MISSING}\n"
    extra = extra.replace("  optional:\n    - {name: DOCKRION_TEST_OPTIONAL}\n", "")
    extra += "  optional: []\n"
    dockfile = write_project(tmp_path, "show", extra, READS_ENV)
    finished = subprocess.run(
        [sys.executable, "-m", "dockrion_runtime", "serve", str(dockfile), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert "MISSING_SECRET" in finished.stderr
    assert "DOCKRION_TEST_TOKEN" in finished.stderr
    assert "DOCKRION_TEST_MODEL" not in finished.stderr  # its default applies


def test_env_files_and_defaults_reach_agent_code(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "show", SECRETS, READS_ENV)
    (tmp_path / ".env").write_text("DOCKRION_TEST_TOKEN=from-the-env-file\n")
    process, url = start_server(dockfile)
    try:
        output = httpx.post(f"{url}/invoke", json={"query": "x"}).json()["output"]
    finally:
        kill_server(process)
    assert output == {
        "DOCKRION_TEST_TOKEN": "from-the-env-file",
        "DOCKRION_TEST_MODEL": "small-model",
        "DOCKRION_TEST_OPTIONAL": None,
    }


def test_create_app_is_not_ready_and_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dockfile = write_project(tmp_path, "show", SECRETS, READS_ENV)
    with caplog.at_level(logging.WARNING, logger="dockrion.runtime"):
        app = create_app(dockfile, environ={"DOCKRION_TEST_TOKEN": ""})
    assert any("DOCKRION_TEST_OPTIONAL" in r.getMessage() for r in caplog.records)
    with serve_app(app) as url:
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "success": False,
            "status": "not_ready",
            "error": "Missing required secrets: DOCKRION_TEST_TOKEN",
            "code": "MISSING_SECRET",
            "details": None,
            "missing_secrets": ["DOCKRION_TEST_TOKEN"],
        }
        invoked = httpx.post(f"{url}/invoke", json={"query": "x"})
        assert (invoked.status_code, invoked.json()["code"]) == (503, "AGENT_NOT_READY")
        assert "DOCKRION_TEST_TOKEN" in invoked.json()["error"]


def test_all_secrets_present_is_ready(serve: Serve) -> None:
    url = serve("show", SECRETS, READS_ENV, environ={"DOCKRION_TEST_TOKEN": "t"})
    assert httpx.get(f"{url}/ready").status_code == 200

"""The OpenAPI document describes what the server does: schemathesis, every check it
offers, a bounded number of cases, against a live server on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import kill_server, start_server, write_project

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.timeout(420)  # schemathesis is given 300 s, the server a minute to start
@pytest.mark.parametrize("auth", ["none", "api_key"])
def test_the_server_keeps_its_openapi_document(tmp_path: Path, auth: str) -> None:
    extra = "auth:\n  api_keys: {env_var: CONTRACT_KEY}\n" if auth == "api_key" else ""
    dockfile = write_project(tmp_path, "echo", extra)
    if auth == "api_key":
        (tmp_path / ".env").write_text("CONTRACT_KEY=contract-test-key\n")
    process, url = start_server(dockfile)
    try:
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            # DELETE /runs/{id} cancels: the run stays readable (schemathesis.toml says why)
            "--exclude-checks",
            "use_after_free",
            "--max-examples",
            "15",
            "--request-timeout",
            "30",
            "--seed",
            "1",
            "--no-color",
        ]
        if auth == "api_key":
            command += ["--header", "X-API-Key: contract-test-key"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,  # schemathesis keeps its run data in the working directory
        )
    finally:
        kill_server(process)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

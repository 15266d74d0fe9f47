"""npm packages for the JavaScript client tests, installed once at a pinned version into the
pytest cache (without a lockfile, scripts off) and reused afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["npm_modules"]


def npm_modules(cache: pytest.Cache, package: str, version: str, *extra: str) -> Path:
    """node_modules holding `package` at `version` (and `extra` packages, pinned specs),
    skipping the test when Node.js or npm is missing."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("Node.js and npm are not installed (.ci/run installs both)")
    key = "-".join([package, version, *extra]).replace("/", "_").replace("@", "")
    root = Path(cache.mkdir(f"npm-{key}"[:120]))
    modules = root / "node_modules"
    manifest = modules / package / "package.json"
    if manifest.exists() and json.loads(manifest.read_text())["version"] == version:
        return modules
    staging = Path(tempfile.mkdtemp(dir=root))
    try:
        install = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                str(staging),
                f"{package}@{version}",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert install.returncode == 0, install.stderr[-2000:]
        shutil.rmtree(modules, ignore_errors=True)
        os.replace(staging / "node_modules", modules)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return modules

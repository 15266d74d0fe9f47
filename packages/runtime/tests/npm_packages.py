"""npm packages for the tests that drive JavaScript clients under Node: one package at a
pinned version, installed once into the pytest cache and reused by later runs."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["install_npm_package"]


def install_npm_package(
    request: pytest.FixtureRequest, package: str, version: str, *extra: str
) -> Path:
    """node_modules holding `package` at `version` (and what it depends on, and `extra`
    packages as pinned specs), installed by npm without a lockfile into the pytest cache;
    skips the test without Node and npm."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("Node.js and npm are not installed (.ci/run installs both)")
    cache = request.config.cache
    assert cache is not None, "the pytest cache provider is needed (not -p no:cacheprovider)"
    key = "-".join([package, version, *extra]).strip("@").replace("/", "-").replace("@", "")
    root = Path(cache.mkdir(key[:120]))
    # tests run side by side (pytest-xdist): one process installs, the others wait for it
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _installed(root, npm, package, version, extra)


def _installed(root: Path, npm: str, package: str, version: str, extra: tuple[str, ...]) -> Path:
    modules = root / "node_modules"
    manifest = modules.joinpath(*package.split("/"), "package.json")
    if manifest.exists() and json.loads(manifest.read_text())["version"] == version:
        return modules
    # installed aside, then moved in whole: an interrupted install leaves nothing half-done
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

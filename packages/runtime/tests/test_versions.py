"""The three distributions move in lockstep, and the runtime pins exactly that version."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dockrion_events
import dockrion_runtime
import dockrion_schema

ROOT = Path(__file__).resolve().parents[3]


def load_bump_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "bump_version", ROOT / "tools" / "bump_version.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bump_version"] = module
    spec.loader.exec_module(module)
    return module


def test_every_version_and_pin_agree() -> None:
    versions = load_bump_tool().read_versions()
    assert len(versions) == 6, versions
    assert len(set(versions.values())) == 1, f"versions drifted: {versions}"


def test_imported_packages_report_the_same_version() -> None:
    assert (
        dockrion_schema.__version__ == dockrion_events.__version__ == dockrion_runtime.__version__
    )

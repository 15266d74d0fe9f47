"""Move the three Dockrion distributions to one new version, in lockstep.

    hatch run bump 0.2.0

Rewrites each package's `_version.py` and the runtime's exact pins on its two siblings.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"schema": "dockrion_schema", "events": "dockrion_events", "runtime": "dockrion_runtime"}
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")
PIN_RE = re.compile(r'("dockrion-(?:schema|events)(?:\[[a-z,]+\])?==)[^"]+(")')


def version_files() -> list[Path]:
    return [ROOT / "packages" / name / module / "_version.py" for name, module in PACKAGES.items()]


def read_versions() -> dict[str, str]:
    """Every place a version is written, by a readable name."""
    found: dict[str, str] = {}
    for path in version_files():
        match = re.search(r'__version__ = "([^"]+)"', path.read_text())
        found[str(path.relative_to(ROOT))] = match.group(1) if match else "<missing>"
    runtime = ROOT / "packages" / "runtime" / "pyproject.toml"
    for match in PIN_RE.finditer(runtime.read_text()):
        name = match.group(1).strip('"=')
        found[f"runtime pin on {name}"] = match.group(0)[len(match.group(1)) : -1]
    return found


def bump(new: str) -> None:
    if not VERSION_RE.match(new):
        raise SystemExit(f"not a release version: {new!r} (expected e.g. 1.2.3, 1.2.3rc1)")
    for path in version_files():
        path.write_text(f'__version__ = "{new}"\n')
    runtime = ROOT / "packages" / "runtime" / "pyproject.toml"
    runtime.write_text(PIN_RE.sub(lambda m: f"{m.group(1)}{new}{m.group(2)}", runtime.read_text()))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: hatch run bump NEW_VERSION", file=sys.stderr)
        for where, version in read_versions().items():
            print(f"  {where}: {version}", file=sys.stderr)
        return 2
    bump(argv[0])
    print(f"all packages at {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""docs/a2a.md's examples, run against a live A2A agent with an API key: the blocks marked
`<!-- test-a2a expect="..." -->` (Python in-process, console commands in bash, the way
test_docs.py runs the other pages' examples, whose server does not serve A2A)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockrion_runtime import create_app

from .conftest import serve_app
from .test_a2a import AUTH, _project
from .test_docs import Example, run

pytest.importorskip("a2a.client")

DOCS_MARKER = re.compile(r'^<!--\s*test-a2a\s+expect="([^"]*)"\s*-->\s*$')
DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "a2a.md"


def _doc_examples() -> list[tuple[int, str, str, str]]:
    """docs/a2a.md's blocks marked `<!-- test-a2a expect="..." -->`: (line, language, code,
    expected output)."""
    lines = DOCS_PAGE.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        marker = DOCS_MARKER.match(line.strip())
        if marker:
            language = lines[index + 1].removeprefix("```")
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            found.append((index + 2, language, "\n".join(lines[index + 2 : end]) + "\n", marker[1]))
    return found


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("a2a-docs")
    dockfile = _project(folder, "words")
    dockfile.write_text(dockfile.read_text().replace(AUTH, "auth: {mode: api_key}\n"))
    with serve_app(create_app(dockfile, environ={"DOCKRION_API_KEY": "docs-key"})) as base:
        yield base


@pytest.mark.parametrize("example", _doc_examples(), ids=lambda e: f"a2a.md:{e[0]}")
def test_the_a2a_page_examples_run(
    example: tuple[int, str, str, str],
    docs_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line, language, code, expect = example
    monkeypatch.setenv("DOCKRION_API_KEY", "docs-key")
    output = run(Example("a2a.md", line, language, code, expect), docs_url, tmp_path)
    assert expect in output, output


def test_the_a2a_page_has_tested_examples() -> None:
    assert {language for _, language, _, _ in _doc_examples()} == {"python", "console"}

"""The PyYAML internals the Dockfile loader relies on, checked in the shape it uses them.

PyYAML documents `yaml.safe_load` and friends, not the loader's composing steps: a release
may change them. pyyaml has an upper bound in pyproject.toml naming them; before raising
it, this test must pass on the new release. It runs on the lowest declared versions too
(`python3 tools/release_smoke.py --floors`), so it needs no fixture and no conftest.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode


def test_the_safe_loader_composes_node_by_node_through_an_overridable_step() -> None:
    internal = (
        "yaml.SafeLoader(text): compose_node(parent, index) once per node, peek_event()."
        "start_mark, get_single_node(), construct_object(node, deep=True), dispose()"
    )
    user = "dockrion_schema.yaml_source (_BoundedLoader bounds the nesting; _Builder)"

    class Counting(yaml.SafeLoader):
        def __init__(self, text: str) -> None:
            super().__init__(text)
            self.depth = self.deepest = 0
            self.starts: list[Any] = []

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)
            self.starts.append(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    loader = Counting("a: [1, {b: 2}]\n")
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    message = f"{internal} changed: {user} relies on it (see packages/schema/pyproject.toml)"
    assert isinstance(node, MappingNode), message
    assert loader.deepest == 4, message  # mapping, sequence, mapping, scalar
    assert all(hasattr(mark, "line") and hasattr(mark, "column") for mark in loader.starts), message
    scalar = ScalarNode("tag:yaml.org,2002:int", "5")
    assert yaml.SafeLoader("").construct_object(scalar, deep=True) == 5, message

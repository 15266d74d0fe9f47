"""Redaction patterns checked for a token stream when the Dockfile loads: what each needs
held back, and the constructs refused with their names."""

from __future__ import annotations

import pytest

from dockrion_schema import DockfileError, parse_dockspec, stream_shape

BASE = 'version: "1.0"\nagent: {name: demo, handler: "app:handle"}\nio_schema: {}\nexpose: {}\n'


def with_patterns(*patterns: str) -> str:
    listed = ", ".join(f"'{p}'" for p in patterns)
    return BASE + f"policies:\n  safety:\n    redact_patterns: [{listed}]\n"


@pytest.mark.parametrize(
    ("pattern", "reach", "behind", "run"),
    [
        ("sk-[A-Z0-9]{12}", 17, 1, False),
        ("(?<=password=)[a-z0-9]{8}", 10, 10, False),
        ("[0-9]{4}(?= is the pin)", 17, 1, False),
        ("password=\\S+", 12, 1, True),
        ("token=(\\w+)", 9, 1, True),
    ],
)
def test_accepted_patterns_say_what_a_stream_holds(
    pattern: str, reach: int, behind: int, run: bool
) -> None:
    shape = stream_shape(pattern)
    assert (shape.reach, shape.behind, shape.trailing_run) == (reach, behind, run)
    assert parse_dockspec(with_patterns(pattern)).policies is not None


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("BEGIN.*END", "an unbounded repeat ('*', '+' or '{n,}') that is not at the end"),
        ("eyJ[\\w-]+\\.[\\w-]+", "that is not at the end"),
        ("(?:ab)+", "an unbounded repeat of a group"),
        ("\\S+?", "an unbounded lazy repeat"),
        ("a|b\\w+", "in an alternative ('|')"),
        ("(\\w+)x\\1", "that is not at the end"),
        ("x{1,9000}", "more than the 8192"),
    ],
)
def test_patterns_a_stream_cannot_hold_are_refused_naming_the_construct(
    pattern: str, construct: str
) -> None:
    with pytest.raises(DockfileError) as refused:
        parse_dockspec(with_patterns(pattern))
    assert construct in str(refused.value)
    assert "cannot be applied to a token stream" in str(refused.value) or "8192" in str(
        refused.value
    )

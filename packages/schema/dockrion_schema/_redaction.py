"""Whether a redaction pattern can be applied to text that arrives in pieces (a token
stream), and how much text around a match the stream must keep to decide it.

A stream redactor can only release text once no match can still cover it. For that it
needs, for each pattern, how far to the right of a match's start the regex may look
(`reach`: the match itself, lookaheads, a boundary check of the next character) and how
far to the left (`behind`: lookbehinds, word boundaries). A pattern whose matches have
no longest length can still be streamed when its unbounded part is its very end, a
greedy repeat of one character (`password=\\S+`, `sk-[a-z0-9]+`): the match then goes on
exactly as long as the characters that follow are of that kind. Any other unbounded
construct is refused, naming it, since no bounded amount of held text can decide it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_STREAM_REACH", "StreamShape", "stream_shape"]

# The regex parser (private, untyped) knows the structure of a pattern.
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

# A bounded pattern that can look further than this is refused: a stream holds back up to
# this many characters behind the text it sends.
MAX_STREAM_REACH = 8192

_ONE_CHAR = {_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN, _c.CATEGORY}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT}
_UNBOUNDED = _c.MAXREPEAT


@dataclass(frozen=True, slots=True)
class StreamShape:
    """How a stream must hold text to apply one pattern.

    `reach`: characters from a match's start (inclusive) the regex may examine before its
    answer there is final (for a trailing run: up to the run's first required characters).
    `behind`: characters before a match's start it may examine. `trailing_run`: the match
    ends with a greedy repeat of one character with no upper bound, which goes on while
    the text does.
    """

    reach: int
    behind: int
    trailing_run: bool


class _Unstreamable(ValueError):
    pass


def stream_shape(pattern: str | re.Pattern[str]) -> StreamShape:
    """The shape of `pattern` for a stream, or ValueError naming what cannot be streamed.

    >>> stream_shape(r"(?<=password=)[a-z0-9]{8}")
    StreamShape(reach=8, behind=10, trailing_run=False)
    """
    source, flags = (
        (pattern.pattern, pattern.flags) if isinstance(pattern, re.Pattern) else (pattern, 0)
    )
    parsed = _parser.parse(source, flags)
    walker = _Walker(parsed.state)
    items = list(parsed)
    tail = _trailing_run(items)
    try:
        if tail is None:
            _, reach = walker.sequence(items)
        else:
            prefix, minimum = tail
            consumed, reach = walker.sequence(prefix)
            reach = max(reach, consumed + max(minimum, 1))
    except _Unstreamable as exc:
        raise ValueError(
            f"{source!r} cannot be applied to a token stream: it has {exc}; give the repeat "
            "an upper bound (for example {1,256}) or move it to the very end of the pattern"
        ) from None
    reach += 2  # a boundary or end-of-text check looks one character past the last one
    if reach > MAX_STREAM_REACH:
        raise ValueError(
            f"{source!r} can look {reach} characters ahead, more than the {MAX_STREAM_REACH} "
            "a token stream holds back; lower its repeat counts"
        )
    return StreamShape(reach, walker.behind + 1, tail is not None)


def _trailing_run(items: list[Any]) -> tuple[list[Any], int] | None:
    """(everything before it, its minimum count) when the pattern ends with an unbounded
    greedy repeat of one character, possibly inside groups; else None."""
    prefix: list[Any] = []
    while items:
        op, av = items[-1]
        if op is _c.SUBPATTERN:
            prefix += items[:-1]
            items = list(av[3])
            continue
        if op is _c.ATOMIC_GROUP:
            prefix += items[:-1]
            items = list(av)
            continue
        if op in _REPEATS and op is not _c.MIN_REPEAT:
            low, high, body = av
            body = list(body)
            if high == _UNBOUNDED and len(body) == 1 and body[0][0] in _ONE_CHAR:
                return prefix + items[:-1], low
        return None
    return None


class _Walker:
    """Widths of parsed pattern parts: (most characters consumed, furthest examined)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.behind = 0

    def sequence(self, items: Any) -> tuple[int, int]:
        consumed = reach = 0
        for op, av in items:
            width, look = self.item(op, av)
            reach = max(reach, consumed + look)
            consumed += width
        return consumed, reach

    def item(self, op: Any, av: Any) -> tuple[int, int]:
        if op in _ONE_CHAR:
            return 1, 1
        if op is _c.AT:
            self.behind = max(self.behind, 1)
            return 0, 2
        if op is _c.SUBPATTERN:
            return self.sequence(av[3])
        if op is _c.ATOMIC_GROUP:
            return self.sequence(av)
        if op in _REPEATS:
            _, high, body = av
            width, look = self.sequence(body)
            if high == _UNBOUNDED:
                if width == 0:
                    return 0, look
                if op is _c.MIN_REPEAT:
                    raise _Unstreamable("an unbounded lazy repeat ('*?', '+?' or '{n,}?')")
                if len(body) != 1 or body[0][0] not in _ONE_CHAR:
                    raise _Unstreamable("an unbounded repeat of a group ('(...)*' or '(...)+')")
                raise _Unstreamable(
                    "an unbounded repeat ('*', '+' or '{n,}') that is not at the end of the pattern"
                )
            return high * width, (max(high - 1, 0) * width + look) if high else 0
        if op is _c.BRANCH:
            pairs = []
            for branch in av[1]:
                try:
                    pairs.append(self.sequence(branch))
                except _Unstreamable as exc:
                    raise _Unstreamable(f"{exc}, in an alternative ('|')") from None
            return max(p[0] for p in pairs), max(p[1] for p in pairs)
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            width, look = self.sequence(body)
            if direction < 0:  # a lookbehind ends where it is; what it reads lies before
                self.behind += max(width, look)
                return 0, 0
            return 0, look
        if op is _c.GROUPREF:
            low_high = self.state.groupwidths[av]
            high = low_high[1] if low_high else _UNBOUNDED
            if high >= _UNBOUNDED:
                raise _Unstreamable("a backreference to a group with no longest match")
            return high, high
        if op is _c.GROUPREF_EXISTS:
            _, yes, no = av
            first = self.sequence(yes)
            second = self.sequence(no) if no is not None else (0, 0)
            return max(first[0], second[0]), max(first[1], second[1])
        if op in (_c.FAILURE, _c.SUCCESS):
            return 0, 0
        raise _Unstreamable(f"a construct this check does not know ({op})")

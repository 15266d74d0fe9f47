"""`policies.safety.redact_patterns` and `max_output_chars` over everything a run emits.

Each match of any pattern becomes `[REDACTED]` (overlapping or adjacent matches, of one
pattern or several, become one). Whole values (an output, an event's fields) are
redacted at once; the token text is a stream, redacted by `StreamRedactor` as it arrives:
it holds back only what a match could still cover, keeps the text a lookbehind reads, and
does a bounded amount of work per character, so a long run of matching text costs no more
than any other text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import pydantic_core

from dockrion_schema import stream_shape

from ..errors import RuntimeHTTPError

__all__ = [
    "REDACTED",
    "PolicyViolationError",
    "RedactPattern",
    "RunRedaction",
    "StreamRedactor",
    "redact_text",
]

REDACTED = "[REDACTED]"


class PolicyViolationError(RuntimeHTTPError):
    """400 POLICY_VIOLATION: the input, or the output under `halt_on_violation`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "POLICY_VIOLATION")


def _violation() -> PolicyViolationError:
    return PolicyViolationError(
        "Agent output matched a redaction pattern and policies.safety.halt_on_violation is on"
    )


class RedactPattern:
    """A compiled pattern with what a stream must keep to apply it (see `stream_shape`)."""

    __slots__ = ("behind", "reach", "regex", "run")

    def __init__(self, source: str) -> None:
        self.regex = re.compile(source)
        shape = stream_shape(self.regex)
        self.reach = shape.reach
        self.behind = shape.behind
        self.run = shape.trailing_run


def _spans(patterns: Sequence[RedactPattern], text: str) -> list[tuple[int, int]]:
    """The matches of every pattern, merged where they overlap or touch."""
    found = sorted(
        (m.start(), m.end())
        for pattern in patterns
        for m in pattern.regex.finditer(text)
        if m.end() > m.start()
    )
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def redact_text(patterns: Sequence[RedactPattern], text: str) -> tuple[str, bool]:
    """`text` with each match replaced, and whether anything matched."""
    spans = _spans(patterns, text)
    if not spans:
        return text, False
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts += (text[position:start], REDACTED)
        position = end
    parts.append(text[position:])
    return "".join(parts), True


class _Scan:
    """One pattern's progress through a stream. Searching: no match starts before `pos`
    that was not found already. Growing (a trailing run that reached the end of the text):
    the match started at `start` and still goes on; `seed` is its beginning (with the text
    a lookbehind reads before it) and is all that is kept to tell where it ends."""

    __slots__ = ("growing", "pattern", "pos", "run_end", "seed", "seed_start", "start")

    def __init__(self, pattern: RedactPattern) -> None:
        self.pattern = pattern
        self.pos = 0
        self.growing = False
        self.start = 0
        self.seed = ""
        self.seed_start = 0
        self.run_end = 0


class StreamRedactor:
    """Redacts text that arrives in pieces, releasing what no match can still cover.

    Positions are absolute (counted from the stream's first character). The text kept is
    `_text`, from `_base`: what a pattern still searches, plus the characters before it that
    a lookbehind reads. Every pattern's search resumes where its last final answer left
    off, so each character is searched a bounded number of times; a match that goes on
    (`password=\\S+` followed by endless non-space text) is followed from its end without
    keeping its text. `held` is the number of characters kept: at most the patterns' reach
    and lookbehind, plus the piece being fed.
    """

    def __init__(self, patterns: Sequence[RedactPattern]) -> None:
        self._scans = [_Scan(p) for p in patterns]
        self._behind = max(p.behind for p in patterns)
        self._text = ""
        self._base = 0
        self._end = 0  # characters fed so far
        self._released = 0
        self._covered: list[list[int]] = []  # redacted intervals not yet released
        self._in_marker = False  # the last released character was redacted
        self.matched = False  # a match was found (halt_on_violation)

    @property
    def held(self) -> int:
        return len(self._text)

    def feed(self, text: str) -> str:
        self._text += text
        self._end += len(text)
        return self._advance(final=False)

    def flush(self) -> str:
        return self._advance(final=True)

    def _cover(self, start: int, end: int) -> None:
        self.matched = True
        covered = self._covered
        covered.append([start, end])
        if len(covered) > 1:
            covered.sort()
            merged = [covered[0]]
            for interval in covered[1:]:
                if interval[0] <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], interval[1])
                else:
                    merged.append(interval)
            self._covered = merged

    def _advance(self, final: bool) -> str:
        end = self._end
        release = end
        for scan in self._scans:
            if scan.growing:
                self._follow(scan, final)
            if not scan.growing:
                self._search(scan, final)
                release = min(release, scan.pos)
        return self._release(end if final else release)

    def _follow(self, scan: _Scan, final: bool) -> None:
        """A growing match: how far the new text continues it."""
        end = self._end
        if end > scan.run_end:
            fresh = self._text[scan.run_end - self._base :]
            match = scan.pattern.regex.match(scan.seed + fresh, scan.seed_start)
            length = len(scan.seed)
            reached = scan.run_end + max((match.end() if match else length) - length, 0)
            scan.run_end = reached
            self._cover(scan.start, reached)
            if reached < end:
                scan.growing, scan.seed, scan.pos = False, "", reached
                return
        if final:
            scan.growing, scan.seed, scan.pos = False, "", end

    def _search(self, scan: _Scan, final: bool) -> None:
        pattern, text, base, end = scan.pattern, self._text, self._base, self._end
        regex, reach = pattern.regex, pattern.reach
        settled = end if final else end - reach  # answers at or before this are final
        pos = scan.pos
        while True:
            match = regex.search(text, pos - base)
            if match is None:
                scan.pos = max(pos, settled + 1)
                return
            start, stop = match.start() + base, match.end() + base
            if start > settled:
                scan.pos = max(pos, settled + 1)
                return
            if pattern.run and stop == end and not final:
                # a trailing run up to the end of the text: it may go on, follow it
                keep = max(start - pattern.behind, base)
                scan.growing, scan.start, scan.run_end = True, start, end
                scan.seed = text[keep - base : min(end, start + reach) - base]
                scan.seed_start = start - keep
                scan.pos = end
                self._cover(start, end)
                return
            if stop > start:
                self._cover(start, stop)
                pos = stop
            else:
                pos = start + 1

    def _release(self, cut: int) -> str:
        parts: list[str] = []
        position = self._released
        text, base = self._text, self._base
        covered = self._covered
        while covered and covered[0][0] < cut and position < cut:
            start, stop = covered[0]
            if stop <= position:
                covered.pop(0)
                continue
            if start > position:
                parts.append(text[position - base : start - base])
                self._in_marker = False
                position = start
            if not self._in_marker:
                parts.append(REDACTED)
                self._in_marker = True
            position = min(stop, cut)
            if stop <= cut:
                covered.pop(0)
        if position < cut:
            parts.append(text[position - base : cut - base])
            self._in_marker = False
            position = cut
        self._released = position
        # keep what the searches still need, and what their lookbehinds read before it
        searching = [s.pos for s in self._scans if not s.growing]
        keep_from = min([*searching, position]) - self._behind
        if keep_from > base:
            self._text = text[keep_from - base :]
            self._base = keep_from
        return "".join(parts)


class RunRedaction:
    """What one run may send: every event's data redacted, the token text redacted as a
    stream and cut at `max_output_chars`, and under `halt_on_violation` the first match
    refused (the emit that carries it raises POLICY_VIOLATION, and so does every later
    one). Set as the run's `StreamContext.redaction`; called from the loop and from worker
    threads alike."""

    def __init__(
        self, patterns: Sequence[RedactPattern], halt: bool, max_chars: int | None
    ) -> None:
        self._patterns = patterns
        self._stream = StreamRedactor(patterns) if patterns else None
        self._halt = halt
        self._budget = max_chars
        self._halted = False
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Characters of token text held back now."""
        return 0 if self._stream is None else self._stream.held

    def feed(self, text: str) -> str:
        with self._lock:
            if self._halted:
                raise _violation()
            if self._stream is not None:
                text = self._stream.feed(text)
                if self._halt and self._stream.matched:
                    self._halted = True
                    raise _violation()
            return self._cap(text)

    def flush(self) -> str:
        with self._lock:
            if self._stream is None or self._halted:
                return ""
            text = self._stream.flush()
            if self._halt and self._stream.matched:
                self._halted = True  # the terminal event that follows says why
                return ""
            return self._cap(text)

    def scrub(self, value: Any, *, may_refuse: bool = True) -> Any:
        if self._halted and may_refuse:
            raise _violation()
        if not self._patterns or isinstance(value, bool | int | float):
            return value
        try:
            value = pydantic_core.to_jsonable_python(value)
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
            return value  # no JSON form: the event is refused when it is serialised
        redacted, matched = self._redact(value)
        if matched and self._halt and may_refuse:
            with self._lock:
                self._halted = True
            raise _violation()
        return redacted

    def _redact(self, value: Any) -> tuple[Any, bool]:
        if isinstance(value, str):
            return redact_text(self._patterns, value)
        if isinstance(value, list):
            items = [self._redact(item) for item in value]
            return [item for item, _ in items], any(hit for _, hit in items)
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            hit = False
            for key, item in value.items():
                new_key, key_hit = redact_text(self._patterns, str(key))
                result[new_key], item_hit = self._redact(item)
                hit = hit or key_hit or item_hit
            return result, hit
        return value, False

    def _cap(self, text: str) -> str:
        if self._budget is None:
            return text
        text = text[: self._budget]
        self._budget -= len(text)
        return text

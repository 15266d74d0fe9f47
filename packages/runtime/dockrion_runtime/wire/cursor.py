"""Where a client is in a stream whose frames are made from stored events, several frames
per event (AG-UI, the LangGraph API): ids `<sequence>.<index>`, so a client that comes back
gets every frame after the last one it has, from the run log."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FrameCursor"]

_CURSOR = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,6}))?")


@dataclass(frozen=True, slots=True)
class FrameCursor:
    """Everything up to stored event `sequence` (all of its frames when `index` is None,
    else its first `index + 1`)."""

    sequence: int
    index: int | None = None

    @classmethod
    def parse(cls, text: str) -> FrameCursor | None:
        """`"7"` or `"7.1"` (a frame's `id:`); None when `text` is neither."""
        match = _CURSOR.fullmatch(text)
        if match is None:
            return None
        index = match.group(2)
        return cls(int(match.group(1)), None if index is None else int(index))

    def has(self, sequence: int, index: int) -> bool:
        """Whether the client already has frame `index` made from stored event `sequence`."""
        if sequence != self.sequence:
            return sequence < self.sequence
        return self.index is None or index <= self.index

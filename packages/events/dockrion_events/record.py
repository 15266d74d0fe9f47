"""One stored event: serialized once, when appended, and shared by every subscriber."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .models import TERMINAL_EVENT_TYPES, BaseEvent, parse_event
from .sse import encode_frame

__all__ = ["EventRecord"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    sequence: int
    type: str
    data: str  # compact JSON of the whole event
    frame: bytes = field(repr=False, default=b"")  # the exact SSE bytes, `id:` line included

    def __post_init__(self) -> None:
        if not self.frame:
            object.__setattr__(self, "frame", encode_frame(self.type, self.data, self.sequence))

    @classmethod
    def from_event(cls, event: BaseEvent) -> EventRecord:
        return cls(event.sequence, event.type, event.to_json())

    @property
    def size(self) -> int:
        """Bytes held for it: its JSON and its frame."""
        return len(self.data) + len(self.frame)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    def event(self) -> BaseEvent:
        return parse_event(json.loads(self.data))

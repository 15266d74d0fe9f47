"""A run's AG-UI events as a resumable Server-Sent Events stream.

Each AG-UI event is written with an SSE `id:` naming where it came from: `<sequence>` for
the last AG-UI event made from a stored event, `<sequence>.<n>` for the ones before it (n
from 0). The translation is a pure function of the log (`ag_ui.py`), so a client that
sends back the last id it saw gets exactly the events after it: the stream is rebuilt from
the log's start and the events the client has are left out.

Importing this module needs the `ag-ui` extra (`pip install 'dockrion-runtime[ag-ui]'`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ag_ui.encoder import EventEncoder

from dockrion_events import EventRecord

from .ag_ui import AgUiTranslator
from .cursor import FrameCursor

__all__ = ["AgUiCursor", "ag_ui_batches"]


# the stream's ids and where a client is in it
AgUiCursor = FrameCursor


async def ag_ui_batches(
    batches: AsyncIterator[list[EventRecord]],
    translator: AgUiTranslator,
    after: AgUiCursor | None,
) -> AsyncIterator[list[EventRecord]]:
    """A run's stored events from its start -> AG-UI SSE frames (as records whose `frame` is
    the AG-UI event, encoded by the package's `EventEncoder`, after its `id:` line), leaving
    out those the client has (`after`). An empty batch (the log is idle) passes through."""
    encoder = EventEncoder()
    try:
        async for batch in batches:
            frames: list[EventRecord] = []
            for record in batch:
                events = translator.feed(record)
                last = len(events) - 1
                for index, event in enumerate(events):
                    if after is not None and after.has(record.sequence, index):
                        continue
                    event_id = f"{record.sequence}" + (f".{index}" if index < last else "")
                    encoded = encoder.encode(event)
                    frames.append(
                        EventRecord(
                            record.sequence,
                            event.type.value,
                            encoded.removeprefix("data: ").rstrip("\n"),
                            frame=f"id: {event_id}\n{encoded}".encode(),
                        )
                    )
            if frames or not batch:
                yield frames
    finally:
        await batches.aclose()  # type: ignore[attr-defined]

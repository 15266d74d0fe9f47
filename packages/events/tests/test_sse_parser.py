"""The SSE parser against the HTML spec's "interpreting an event stream": the spec's own
examples, its edge cases, and every way of cutting a stream into chunks."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockrion_events import SseMessage, SseParser, parse_sse


def reference(stream: str) -> list[SseMessage]:
    """The spec's algorithm step by step, on a whole stream (a slow, plain oracle)."""
    stream = stream.removeprefix("\ufeff")
    messages: list[SseMessage] = []
    event, data, last_id, retry = "", "", None, None
    position = 0
    while True:
        ends = [i for i in (stream.find("\r", position), stream.find("\n", position)) if i >= 0]
        if not ends:
            return messages  # an unfinished line, or nothing: not dispatched
        end = min(ends)
        line = stream[position:end]
        position = end + (2 if stream.startswith("\r\n", end) else 1)
        if not line:
            if data:
                messages.append(SseMessage(event or "message", data[:-1], last_id, retry))
                retry = None
            event = data = ""
        elif not line.startswith(":"):
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "event":
                event = value
            elif name == "data":
                data += value + "\n"
            elif name == "id" and "\0" not in value:
                last_id = value
            elif name == "retry" and value and all(c in "0123456789" for c in value):
                retry = int(value)


def chunked(chunks: list[bytes]) -> list[SseMessage]:
    parser = SseParser()
    return [message for chunk in chunks for message in parser.feed(chunk)]


def fired(stream: str | bytes) -> list[tuple[str, str, str | None]]:
    return [(m.event, m.data, m.id) for m in parse_sse(stream)]


# The examples of the HTML spec's section on event streams, and what each one fires.
SPEC_EXAMPLES = [
    ("data: YHOO\ndata: +2\ndata: 10\n\n", [("message", "YHOO\n+2\n10", None)]),
    (
        ": test stream\n\ndata: first event\nid: 1\n\n"
        "data:second event\nid\n\ndata:  third event\n\n",
        [
            ("message", "first event", "1"),
            ("message", "second event", ""),
            ("message", " third event", ""),
        ],
    ),
    ("data\n\ndata\ndata\n\ndata:", [("message", "", None), ("message", "\n", None)]),
    ("data:test\n\ndata: test\n\n", [("message", "test", None)] * 2),
    (
        "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        [("add", "73857293", None), ("remove", "2153", None), ("add", "113411", None)],
    ),
]
ENDINGS = ["\n", "\r\n", "\r"]

# Every rule at once: a BOM, the three line endings, multi-byte characters, a comment, an
# unknown field, a field without colon, an event with no data, ids with and without NUL,
# retry values good and bad, and an unfinished event at the end.
FEATURES = (
    "\ufeff: hi\r\nretry: 1500\r\nevent: ping\r\n\r\n"
    "id: 7\rdata: h\u00e9\rdata\r\r"
    "foo: bar\nid: 8\0\nevent: tick\ndata:  \U0001d11e\n\n"
    "retry: 1a\r\ndata: z\r\n\r\ndata: never"
)


def cuts_into_three(wire: bytes) -> Iterator[list[bytes]]:
    """Every way of cutting `wire` into three chunks (empty ones included)."""
    for first, second in itertools.combinations_with_replacement(range(len(wire) + 1), 2):
        yield [wire[:first], wire[first:second], wire[second:]]


@pytest.mark.parametrize(("stream", "expected"), SPEC_EXAMPLES)
def test_the_spec_examples_with_any_line_ending_bom_and_chunking(
    stream: str, expected: list[tuple[str, str, str | None]]
) -> None:
    """Each example fires what the spec says with LF, CRLF or CR line endings, after a
    leading BOM or not, however its bytes are cut (inside a CRLF, the BOM, a field name)."""
    for ending, bom in itertools.product(ENDINGS, ["", "\ufeff"]):
        wire = (bom + stream.replace("\n", ending)).encode()
        assert fired(wire) == expected, wire
        for chunks in cuts_into_three(wire):
            assert [(m.event, m.data, m.id) for m in chunked(chunks)] == expected, chunks


def test_every_rule_in_one_stream_whole_and_cut_anywhere() -> None:
    whole = list(parse_sse(FEATURES))
    assert [(m.event, m.data, m.id, m.retry) for m in whole] == [
        ("message", "h\u00e9\n", "7", 1500),
        ("tick", " \U0001d11e", "7", None),
        ("message", "z", "7", None),
    ]
    assert whole == reference(FEATURES)
    for chunks in cuts_into_three(FEATURES.encode()):
        assert chunked(chunks) == whole, chunks


def test_a_crlf_split_between_chunks_ends_one_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [SseMessage("message", "a\nb")]
    assert parser.feed(b"\ndata: c\r\n\r\n") == [SseMessage("message", "c")]


def test_an_event_without_data_is_not_fired_and_its_name_is_forgotten() -> None:
    assert fired("event: ping\n\ndata: x\n\n") == [("message", "x", None)]
    assert fired("event: ping\nid: 3\n\n") == []


def test_one_leading_bom_is_dropped() -> None:
    assert fired(b"\xef\xbb\xbfdata: a\n\n") == [("message", "a", None)]
    assert fired("\ufeffdata: a\n\n") == [("message", "a", None)]
    # only one: a second makes the field name unknown
    assert fired("\ufeff\ufeffdata: a\n\n") == []
    assert fired("data: \ufeffa\n\n") == [("message", "\ufeffa", None)]


def test_an_id_holding_nul_is_ignored() -> None:
    stream = "id: 5\ndata: a\n\nid: 6\0\ndata: b\n\n"
    assert fired(stream) == [("message", "a", "5"), ("message", "b", "5")]


def test_retry_takes_ascii_digits_only_and_comes_with_the_next_message() -> None:
    stream = (
        "retry: 250\n\ndata: a\n\n"  # a retry alone fires nothing: it comes with `a`
        "retry: 1a\ndata: b\n\n"
        "retry: \u0663\ndata: c\n\n"  # a digit, but not ASCII
        "retry: -1\nretry:\nretry: +5\ndata: d\n\n"
    )
    assert [(m.data, m.retry) for m in parse_sse(stream)] == [
        ("a", 250),
        ("b", None),
        ("c", None),
        ("d", None),
    ]


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    assert fired(b"data: \xff\xfe!\n\n") == [("message", "\ufffd\ufffd!", None)]
    parser = SseParser()
    assert parser.feed(b"data: \xe2\x82") == []  # the start of a character, cut
    assert parser.feed(b"\xac\n\n") == [SseMessage("message", "\u20ac")]


# Streams made of the pieces the rules are about.
_field_line = st.builds(
    lambda name, colon, value: name + colon + value,
    st.sampled_from(["data", "event", "id", "retry", "", "foo", "dat"]),
    st.sampled_from(["", ":", ": ", ":  "]),
    st.text(alphabet="a\u00e9\U0001d11e 7:\0\ufeff", max_size=6),
)
_line = st.one_of(st.just(""), _field_line)
_streams = st.builds(
    lambda bom, lines, tail: bom + "".join(line + end for line, end in lines) + tail,
    st.sampled_from(["", "\ufeff"]),
    st.lists(st.tuples(_line, st.sampled_from(ENDINGS)), max_size=30),
    st.sampled_from(["", "data: unfinished", "\r"]),
)


@settings(max_examples=400, deadline=timedelta(seconds=1))
@given(stream=_streams, cuts=st.lists(st.integers(0, 400), max_size=20), as_text=st.booleans())
def test_any_chunking_of_any_stream_fires_what_the_spec_says(
    stream: str, cuts: list[int], as_text: bool
) -> None:
    wire: str | bytes = stream if as_text else stream.encode()
    whole = list(parse_sse(wire))
    assert whole == reference(stream)
    points = sorted({min(cut, len(wire)) for cut in cuts})
    chunks = [wire[a:b] for a, b in itertools.pairwise([0, *points, len(wire)])]
    parser = SseParser()
    assert [m for chunk in chunks for m in parser.feed(chunk)] == whole

"""Batch parsing gives exactly what parsing line by line gives.

Two batch parsers read many lines in one JSON call when that is sure to be exact: the ingest of a
pipe read (``app.output.to_events`` against ``to_event``) and the fold of a stored log
(``app.lineparse.parse_lines`` against ``safe_parse``). Both are checked here on mixes of what a
lesson can print: kit lines with any spacing, compact JSON, garbage, lone surrogates (escaped and
UTF-8-encoded), invalid UTF-8, NaN, nested objects, a ``kind`` twice or not first, server kinds.
"""

import json
import math
import random

import pytest

from app import lineparse, output
from app.output import numbered_all, safe_parse, to_event, to_events

KIT = b'{"v": 1, "t": 1700000000.25, "kind": "log", "level": "INFO", "thread": "W-1", "msg": "item %d"}'
COMPACT = b'{"v":1,"t":1700000000.5,"kind":"log","level":"INFO","thread":"W-2","msg":"c %d"}'
ODD = [
    b"", b"garbage", b"[]", b"1", b'"text"', b"{", b"}", b"{}", b'{"kind": "log"', b'"kind": "log"}',
    b'{"t": 1, "kind": "log", "msg": "x}', b'y"}',  # a string that a join would close on the next line
    b'{"kind": "log", "msg": "a"}, {"kind": "log"}',  # two objects on one line
    b'{"kind": "log", "msg": "\\ud800"}',  # an escaped lone surrogate
    b'{"kind": "log", "msg": "\\ud83d\\ude00"}',  # an escaped pair: a character
    b'{"kind": "log", "msg": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8: invalid
    b'{"kind": "log", "msg": "\xff"}',  # invalid UTF-8
    b'{"kind": "log", "msg": "caf\xc3\xa9 \xe2\x82\xac"}',  # valid UTF-8
    b'{"kind": "log", "t": NaN}', b'{"kind": "log", "t": -Infinity}', b'{"kind": "log", "msg": "NaN"}',
    b'{"kind": "log", "t": 1e999}',
    b'{"kind": "threads", "threads": [{"name": "a", "kind": "x"}]}',  # nested, a nested kind
    b'{"data": {"kind": "x"}, "kind": "log"}',  # a nested kind first
    b'{"kind": "log", "kind": "result"}',  # kind twice
    b'{"msg": "m", "kind": "log"}',  # kind not first
    b'{"kind": 3}', b'{"kind": "status", "status": "exited"}', b'{"kind": "log", "seq": 7}',
    b'{"kind": "log", "msg": "q\\"uote"}', b'{"kind": "log"}\r', b' {"kind": "log"}', b'{"kind": "log"} ',
    b'{"a": [1, {"b": 2}], "kind": "log"}', b"[" * 3000 + b"]" * 3000, b"{" * 100 + b"}" * 100,
    b'{"kind" : "log", "t" : 2}', b'{"kind":\t"log"}',
]


def mixes(seed: int, count: int):
    """Reads that are mostly plain kit lines (the batch path) with odd lines mixed in at random."""
    rng = random.Random(seed)
    for _ in range(count):
        plain = rng.random() < 0.3
        lines = []
        for i in range(rng.choice([1, 2, 3, 17, 64, 200])):
            if not plain and rng.random() < 0.15:
                lines.append(rng.choice(ODD))
            else:
                lines.append((KIT if rng.random() < 0.5 else COMPACT) % i)
        yield lines


def same(a, b) -> bool:
    """Equal, where NaN equals NaN (a cleaned event never holds one; a stray one must not pass)."""
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


@pytest.fixture
def still_clock(monkeypatch):
    """Text events carry the server's time: one instant, so two parses of a line can be compared."""
    monkeypatch.setattr(output.time, "time", lambda: 1_700_000_001.0)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_to_events_is_to_event_line_by_line(still_clock, stream):
    batched = 0
    for lines in mixes(1 if stream == "stdout" else 2, 400):
        one_by_one = [to_event(line, stream) for line in lines]
        together = to_events(lines, stream)
        assert same(together, one_by_one), lines
        # and what is stored for them, numbered, byte for byte
        stored = [raw for raw, _ in numbered_all(together, 5)]
        assert stored == [raw for raw, _ in numbered_all(one_by_one, 5)]
        batched += stream == "stdout" and all(raw is not None for _, raw in together) and len(lines) > 1
    assert stream == "stderr" or batched > 50  # the batch path itself was taken, not only the fallback


def test_to_events_takes_the_batch_path_for_a_flood(still_clock, monkeypatch):
    calls, real = [], output._batch_parse
    monkeypatch.setattr(output, "_batch_parse", lambda blob: calls.append(1) or real(blob))
    lines = [KIT % i for i in range(100)]
    assert same(to_events(lines, "stdout"), [to_event(line, "stdout") for line in lines])
    assert calls == [1]


def test_to_events_keeps_each_kit_line_byte_for_byte(still_clock):
    lines = [COMPACT % i for i in range(10)]
    assert [raw for _, raw in to_events(lines, "stdout")] == lines


def test_parse_lines_is_safe_parse_line_by_line():
    for lines in mixes(3, 600):
        stored = [line.replace(b"\n", b"") for line in lines]  # a log read's lines have no newline
        assert same(lineparse.parse_lines(stored), [safe_parse(line) for line in stored]), stored


def test_parse_lines_parses_a_stored_flood_in_one_call(monkeypatch):
    calls, real = [], lineparse._DECODER.decode
    counting = type("Counting", (), {"decode": lambda self, text: calls.append(1) or real(text)})
    monkeypatch.setattr(lineparse, "_DECODER", counting())
    lines = [b'{"seq": %d, ' % i + (KIT % i)[1:] for i in range(1000)]
    assert lineparse.parse_lines(lines) == [safe_parse(line) for line in lines]
    assert calls == [1]


def test_parse_lines_goes_line_by_line_when_a_batch_is_not_of_one_shape():
    lines = [KIT % i for i in range(64)]
    lines[40] = b'{"kind": "threads", "threads": [{"name": "a"}]}'  # nested: not one { a line
    lines[41] = b'{"kind": "log", "t": NaN}'  # cleaned to null by safe_parse
    parsed = lineparse.parse_lines(lines)
    assert parsed == [safe_parse(line) for line in lines]
    assert parsed[41]["t"] is None and not any(isinstance(e.get("t"), float) and math.isnan(e["t"])
                                               for e in parsed)


@pytest.mark.parametrize("pair", [
    # Each line starts with { and ends with } or has "kind" once, so the shape's counts come out as
    # for two objects; joined by a comma they are one: as many braces as lines, fewer objects.
    (b'{"kind": "log", "a": "x', b'y", "kind": "log", "b": {}}'),
    (b'{"kind": "log", "a": 1, "b": "', b'", "kind": "log", "c": {}}'),
    (b'{"kind": "log", "a": [1', b'2], "kind": "log", "b": {}}'),
])
def test_lines_that_make_one_object_when_joined_are_not_taken_for_two(still_clock, pair):
    lines = [COMPACT % 1, *pair, COMPACT % 2]
    assert lineparse.parse_lines(lines) == [safe_parse(line) for line in lines]
    assert lineparse.parse_lines(lines)[1:3] == [None, None]
    together = to_events(lines, "stdout")
    assert same(together, [to_event(line, "stdout") for line in lines])
    assert [event["kind"] for event, _ in together[1:3]] == ["stdout", "stdout"]

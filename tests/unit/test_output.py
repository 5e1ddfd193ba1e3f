"""Pipe bytes → numbered events, and the event log viewers read from."""

from __future__ import annotations

import json
import threading

import pytest

from app.eventlog import EventLog
from app.output import MAX_LINE, LineSplitter, kind_of, numbered, safe_parse, text_event, to_event


def parsed(item):
    """The event of a ``read()`` item, parsed from its line when it came from disk."""
    line, event = item
    return event if event is not None else json.loads(line)


def test_splitter_joins_partial_lines_across_reads():
    splitter = LineSplitter()
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\nf") == [b"abc", b"de"]
    assert splitter.flush() == [b"f"]


def test_splitter_bounds_a_line_without_newline():
    splitter = LineSplitter()
    lines = []
    for _ in range(50):  # 50 MB would be slow in a unit test; 50 × 64 KiB shows the bound
        lines += splitter.feed(b"x" * MAX_LINE)
    lines += splitter.feed(b"tail\nnext\n")
    assert len(lines) == 2 and len(lines[0]) < MAX_LINE + 100
    assert lines[0].endswith(b"[line truncated by threadlab]")
    assert lines[1] == b"next"
    assert len(splitter._partial) == 0


def test_kit_lines_keep_their_bytes_and_gain_a_seq():
    raw = b'{"v": 1, "t": 1.5, "kind": "log", "msg": "hi"}'
    event, kept = to_event(raw, "stdout")
    line, numbered_event = numbered(event, kept, 7)
    assert json.loads(line) == {"seq": 7, "v": 1, "t": 1.5, "kind": "log", "msg": "hi"}
    assert numbered_event["seq"] == 7


def test_other_lines_become_text_events():
    assert to_event(b"hello", "stdout")[0]["kind"] == "stdout"
    assert to_event(b'{"not": "an event"}', "stdout")[0]["kind"] == "stdout"
    assert to_event(b"{broken", "stdout")[0]["text"] == "{broken"
    event, _ = to_event(b"caf\xff\xfe", "stderr")
    assert event["kind"] == "stderr" and event["text"] == "caf\ufffd\ufffd"
    assert to_event(b'{"kind": "log", "seq": 99}', "stdout")[1] is None, "a lesson cannot forge seq"
    forged, _ = to_event(b'{"kind": "status", "status": "exited"}', "stdout")
    assert forged["kind"] == "stdout", "nor a status change"


def _items(start, n):
    return [numbered({"kind": "log", "i": i}, None, i) for i in range(start, start + n)]


def test_event_log_reads_from_memory_and_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("app.eventlog.TAIL", 10)
    log = EventLog(tmp_path / "events.jsonl", live=True)
    log.append(_items(0, 25))
    recent = log.read(20)
    assert [parsed(item)["i"] for item in recent] == [21, 22, 23, 24]
    assert all(event is not None for _, event in recent), "recent events come parsed from memory"
    old = log.read(-1, limit=5)
    assert [parsed(item)["i"] for item in old] == [0, 1, 2, 3, 4] and old[0][1] is None
    log.close()
    reopened = EventLog(tmp_path / "events.jsonl", live=False)
    assert len(reopened) == 25 and [parsed(i)["i"] for i in reopened.read(22)] == [23, 24]


def test_event_log_wakes_waiting_viewers(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", live=True)
    woke = []
    viewer = threading.Thread(target=lambda: woke.append(log.wait(-1, timeout=5)))
    viewer.start()
    log.append(_items(0, 1))
    viewer.join(5)
    assert woke == [True]
    assert log.wait(0, timeout=0.01) is False
    log.close()
    assert log.wait(0, timeout=0.01) is True


def test_torn_last_line_is_not_an_event(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq": 0}\n{"seq": 1}\n{"seq": 2, "kin')
    assert len(EventLog(path, live=False)) == 2


def test_only_the_last_few_finished_logs_keep_an_index_in_memory(tmp_path, monkeypatch):
    # A viewer reading a finished run used to rebuild its index and keep it forever: 8 MB for every
    # million-event run anyone had opened. Now only KEPT_INDEXES of them keep one.
    monkeypatch.setattr("app.eventlog.KEPT_INDEXES", 3)
    logs = []
    for n in range(6):
        log = EventLog(tmp_path / f"events{n}.jsonl", live=True)
        log.append(_items(0, 5))
        log.close()
        logs.append(log)
    for log in logs:
        assert [parsed(i)["i"] for i in log.read(2)] == [3, 4]
    assert [log._offsets is not None for log in logs] == [False, False, False, True, True, True]
    assert len(logs[0]) == 5  # a dropped index is rebuilt from the file when needed


def test_closing_keeps_the_index_for_the_viewers_last_read(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", live=True)
    log.append(_items(0, 5))
    index = log._offsets
    log.close()
    (tmp_path / "events.jsonl").unlink()  # a rebuild would now find no events at all
    assert log.read(4) == [] and len(log) == 5 and log._offsets is index


# -- lines that json.loads reads but nothing downstream could store or show -----------------------

def stored(line: bytes) -> tuple[bytes, dict]:
    """A stdout line as the server stores it (seq 3): the line, which must be strict UTF-8 JSON that
    says what the event says, and the event."""
    event, raw = to_event(line, "stdout")
    stored_line, event = numbered(event, raw, 3)

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON to a browser")

    assert json.loads(stored_line.decode("utf-8"), parse_constant=no_constants) == event
    json.dumps(event, ensure_ascii=False).encode("utf-8")  # the event itself encodes, too
    return stored_line, event


def test_an_escaped_lone_surrogate_is_replaced_and_the_line_reserialised():
    line, event = stored(b'{"kind": "log", "msg": "a \\ud800 b", "thread": "\\udc00"}')
    assert event["kind"] == "log" and event["msg"] == "a \ufffd b" and event["thread"] == "\ufffd"
    assert kind_of(line) == b"log"


def test_a_surrogate_pair_is_a_character_and_the_line_stays_as_it_was():
    raw = b'{"kind":"log","msg":"\\ud83d\\ude00"}'
    line, event = stored(raw)
    assert event["msg"] == "\U0001F600" and line == b'{"seq": 3, ' + raw[1:]


def test_invalid_utf8_inside_a_kit_line_keeps_the_event_with_replacement_characters():
    for raw in (b'{"kind": "log", "msg": "caf\xff"}', b'{"kind": "log", "msg": "\xed\xa0\x80"}'):
        line, event = stored(raw)  # the second: a UTF-8-encoded surrogate, which json.loads lets through
        assert event["kind"] == "log" and "\ufffd" in event["msg"]


def test_nan_and_infinity_are_stored_as_null():
    line, event = stored(b'{"kind": "log", "t": NaN, "x": [Infinity, -Infinity], "msg": "n"}')
    assert event["t"] is None and event["x"] == [None, None] and b"NaN" not in line


@pytest.mark.parametrize("raw, kind", [
    (b'{"kind":"log","msg":"x"}', b"log"),
    (b'{ "kind" :\t"log" , "msg": "x" }', b"log"),
    (b'{"kind":"x"}', b"x"),
    (b'{"extra": {"kind": "status"}, "kind": "log"}', b"log"),  # a nested kind first
    (b'{"kind": "status", "kind": "log"}', b"log"),  # the last of two wins, as in json.loads
    (b'{"\\u006bind": "log"}', b"log"),  # an escaped key
    (b'{"kind": "lo\\u0067"}', b"log"),  # an escaped value
    (b'{"a": "kind", "kind": "log"}', b"log"),  # "kind" as a value before the key
])
def test_the_stored_line_names_its_kind_first_whatever_the_spacing(raw, kind):
    line, event = stored(raw)
    assert event["kind"].encode() == kind == kind_of(line)


def test_kind_of_reads_any_spacing_without_parsing():
    assert kind_of(b'{"seq": 1, "kind": "log"}') == b"log"
    assert kind_of(b'{"seq":1,"kind":"log"}') == b"log"
    assert kind_of(b'{"kind"\r\n :  "threads"}') == b"threads"
    assert kind_of(b'{"kind": 5}') == b"" and kind_of(b"garbage") == b"" and kind_of(b'{"kind": "x') == b""


def test_the_seq_splice_always_gives_json():
    for raw in (b"{}", b"{ }", b'{"kind":"x"}', b'{  "kind": "x"}', b'{\t"kind": "x"}'):
        line, _ = numbered({}, raw, 4)
        assert json.loads(line)["seq"] == 4, raw


def test_a_kit_line_without_suspect_bytes_is_kept_byte_for_byte():
    raw = b'{"v": 1, "t": 1.5, "kind": "log", "msg": "caf\xc3\xa9 \\"quoted\\" \\\\ back"}'
    assert to_event(raw, "stdout")[1] is raw


def test_a_deeply_nested_line_is_text_not_a_crash():
    head = b'{"kind": "log", "v": '
    for raw in (head + b"[" * 100_000, head + b"[" * 5000 + b"]" * 5000 + b"}"):
        event, kept = to_event(raw, "stdout")
        assert kept is None and event["kind"] == "stdout"


def test_safe_parse_gives_none_for_a_line_that_is_not_an_object():
    for line in (b"garbage", b"[]", b"null", b'"str"', b"42", b"", b'{"seq": 5, "kind": "log", "msg": "tor',
                 b"\xff\xfe", b"[" * 100_000):
        assert safe_parse(line) is None, line
    assert safe_parse(b'{"msg": "\\ud800", "t": NaN}') == {"msg": "\ufffd", "t": None}
    assert safe_parse(b'{"msg": "caf\xff"}') == {"msg": "caf\ufffd"}


def test_a_server_event_with_a_lone_surrogate_is_stored_with_a_replacement():
    line, event = numbered(text_event("stderr", "could not start: /tmp/\udcff"), None, 0)
    assert event["text"] == "could not start: /tmp/\ufffd" == json.loads(line)["text"]

"""Turning a worker's raw pipe bytes into numbered events.

A pipe read returns any number of bytes: several lines, half a line, or a megabyte with no newline
at all. :class:`LineSplitter` keeps the unfinished line between reads but never more than
``MAX_LINE`` bytes of it: a longer line is cut there, marked, and the rest up to the next newline is
dropped, so a lesson printing 50 MB without a newline cannot grow the server's memory.
:func:`to_event` turns one line into an event: a JSON object line from the kit as it is (with the
server's ``seq`` added), anything else as a ``stdout``/``stderr`` event carrying the text.
:func:`to_events` does the same for a whole pipe read, as one batch when it can (a flood).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

SCHEMA_VERSION = 1
# Kinds only the server writes: a lesson printing one is shown as text, so it cannot fake a status
# change, a signal it was never sent, or the numbering of events.
SERVER_KINDS = frozenset({"status", "signal", "stdout", "stderr"})
MAX_LINE = 64 * 1024  # bytes; a log line longer than this is a bug or a flood, not something to read
TRUNCATED = " … [line truncated by threadlab]"


class LineSplitter:
    def __init__(self) -> None:
        self._partial = bytearray()
        self._dropping = False  # inside an over-long line, discarding until its newline

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            piece = data[start:newline]
            if self._dropping:
                self._dropping = False
            elif self._partial:
                self._partial += piece
                lines.append(self._cut(bytes(self._partial)))
                self._partial.clear()
            else:
                lines.append(self._cut(piece))
            start = newline + 1
        rest = data[start:]
        if rest and not self._dropping:
            self._partial += rest
            if len(self._partial) > MAX_LINE:
                lines.append(self._cut(bytes(self._partial)))
                self._partial.clear()
                self._dropping = True
        return lines

    def flush(self) -> list[bytes]:
        """The unfinished last line, when the stream has ended."""
        if self._partial and not self._dropping:
            line = bytes(self._partial)
            self._partial.clear()
            return [self._cut(line)]
        return []

    @staticmethod
    def _cut(line: bytes) -> bytes:
        if len(line) > MAX_LINE:
            return line[:MAX_LINE] + TRUNCATED.encode()
        return line


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event the server adds to a run's log (``status``, ``signal``, or text it read)."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "kind": kind, **fields}


def text_event(kind: str, text: str) -> dict[str, Any]:
    """A line that was not a kit event: ``stdout`` or ``stderr`` with its text."""
    return server_event(kind, text=text)


_SPACES = (b" ", b"\t", b"\r", b"\n")  # JSON's whitespace; a slice past the end (b"") is not in it


def kind_of(line: bytes) -> bytes:
    """A stored line's ``kind`` without parsing it, whatever its JSON spacing.

    Quotes inside JSON strings are escaped, so ``"kind"`` followed by ``:`` can only be a key. The
    first such key is the event's own: :func:`to_event` re-serialises any line where that would not
    hold (a nested ``kind`` first, a duplicate, an escaped key or value), so live and replayed views
    classify every event alike. Catching up on a long flood parses almost nothing.
    """
    at = line.find(b'"kind"')
    while at >= 0:
        i = at + 6
        if line.startswith(b': "', i):  # the kit's and json.dumps' spacing: no loop at all
            i += 3
        else:
            while line[i:i + 1] in _SPACES:
                i += 1
            if line[i:i + 1] != b":":
                at = line.find(b'"kind"', i)  # a value "kind", not the key
                continue
            i += 1
            while line[i:i + 1] in _SPACES:
                i += 1
            if line[i:i + 1] != b'"':
                return b""  # a kind that is not a string: not an event we know
            i += 1
        end = line.find(b'"', i)
        return line[i:end] if end >= 0 else b""
    return b""


_SURROGATES = re.compile("[\ud800-\udfff]")
# Bytes that may make json.loads return something that cannot be stored or shown as it is: an escaped
# lone surrogate ("\\ud800") becomes a str that UTF-8 cannot encode; NaN and Infinity are not JSON
# to a browser's JSON.parse. Only a line holding one of these gets the (slow) walk over its values.
_SUSPECT = (b"\\ud", b"\\uD", b"NaN", b"Infinity")


def _clean(value: Any) -> tuple[Any, bool]:
    """``value`` with lone surrogates replaced by U+FFFD and non-finite floats by None; changed?"""
    if isinstance(value, str):
        fixed, count = _SURROGATES.subn("\ufffd", value)
        return fixed, count > 0
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            key, key_changed = _clean(key)
            out[key], item_changed = _clean(item)
            changed = changed or key_changed or item_changed
        return out, changed
    if isinstance(value, list):
        pairs = [_clean(item) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    return value, False


# NaN/Infinity literals are read as null; the line holding them is then re-serialised.
_DECODER = json.JSONDecoder(parse_constant=lambda _name: None)
_SCAN = _DECODER.scan_once


def _suspect(line: bytes) -> bool:
    """Whether ``line`` holds one of ``_SUSPECT`` (three searches; an escape needs a backslash)."""
    return (b"NaN" in line or b"Infinity" in line
            or (b"\\" in line and (b"\\ud" in line or b"\\uD" in line)))


def _load_object(line: bytes) -> tuple[dict[str, Any] | None, bool]:
    """The JSON object on ``line`` made safe to store and show, and whether it must be re-serialised
    for the line to say the same; (None, False) when the line is not a JSON object."""
    try:
        text = line.decode("utf-8")  # strict: UTF-8-encoded surrogates (b"\xed\xa0\x80") fail too
        dirty = False
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        dirty = True
    try:
        if text[:1] == "{":
            # The scanner itself, not JSONDecoder.decode's Python wrapper around it (whitespace
            # regexes, raw_decode): half the cost of a line, on every view that reads a file.
            try:
                event, end = _SCAN(text, 0)
            except StopIteration:
                return None, False
            if end != len(text) and text[end:].strip(" \t\n\r"):
                return None, False  # extra data after the object
        else:
            event = _DECODER.decode(text)
        if not isinstance(event, dict):
            return None, False
        if dirty or _suspect(line):
            event, changed = _clean(event)
            dirty = dirty or changed or b"NaN" in line or b"Infinity" in line
    except (ValueError, RecursionError):  # RecursionError: a line of 30 000 nested brackets
        return None, False
    return event, dirty


def looks_whole(line: bytes) -> bool:
    """Whether a stored line can go into a JSON array as it is. One line that is not an object (a
    torn write, a hand edit, an older version's file) would make a whole message of thousands of
    events unreadable, so it is left out. Lines the server wrote pass the byte checks, which cost
    nothing on a long catch-up; only a line with unbalanced braces (one in a message, a torn write)
    is parsed to be sure. Left through: a hand-made ``{...}`` with balanced braces that is not JSON."""
    if line.startswith(b"{") and line.endswith(b"}") and line.count(b"{") == line.count(b"}"):
        return True
    return safe_parse(line) is not None


def safe_parse(line: bytes) -> dict[str, Any] | None:
    """A stored line as an event, or None when it is not a JSON object (a torn write, a hand edit, a
    file from an older version). Lone surrogates and non-finite numbers come back made safe, so what
    a view renders can always be encoded. Views use this, never a bare ``json.loads``."""
    return _load_object(line)[0]


def to_event(line: bytes, stream: str) -> tuple[dict[str, Any], bytes | None]:
    """One output line as an event dict (without ``seq``), plus the line to store for it when it is
    a kit event: the line itself, byte for byte, on the hot path; re-serialised from the (made safe)
    event when the bytes could not be stored or read back as they are (invalid UTF-8, an escaped
    lone surrogate, NaN, a ``kind`` that :func:`kind_of` would not find first)."""
    line = line.rstrip(b"\r")
    if stream == "stdout" and line.startswith(b"{"):
        event, dirty = _load_object(line)
        if event is not None:
            kind = event.get("kind")
            if isinstance(kind, str) and kind not in SERVER_KINDS and "seq" not in event:
                if dirty or kind_of(line) != kind.encode():
                    try:
                        event = {"kind": kind, **event}  # kind first: kind_of finds it, not a nested one
                        line = json.dumps(event, ensure_ascii=False, allow_nan=False).encode()
                    except (ValueError, RecursionError):
                        return text_event(stream, line.decode("utf-8", "replace")), None
                return event, line
    return text_event(stream, line.decode("utf-8", "replace")), None


def to_events(lines: list[bytes], stream: str) -> list[tuple[dict[str, Any], bytes | None]]:
    """:func:`to_event` for every line of one pipe read, the same result, at a fraction of the cost
    when the read is a run of plain kit lines (a flood): checked and parsed as one batch.

    Parsing the read as one JSON array is one call into the C scanner instead of one Python-level
    ``json.loads`` per line (and the keys every line repeats are made once). What makes it exact,
    not a guess, is the shape checked first over the whole read, in C: every line starts with its
    only ``{`` and ends with its only ``}``. An object then can only end at the end of a line, and
    each array element starts at the ``{`` that opens a line, so elements are runs of whole lines;
    as many elements as lines means one line each. No backslash anywhere means no escapes: no
    escaped lone surrogate, and every key is spelt out, so ``"kind"`` appearing exactly once a line
    is the key :func:`kind_of` will find. A read that is not of that shape (nested objects, escapes,
    invalid UTF-8, ``NaN``, a stray ``\r``), or whose parse fails, takes the per-line path.
    """
    n = len(lines)
    if stream == "stdout" and n > 1:
        blob = b"\n".join(lines)
        if (blob.startswith(b"{") and blob.endswith(b"}") and blob.count(b"{") == n
                and blob.count(b"}") == n and blob.count(b"\n{") == n - 1
                and blob.count(b"}\n") == n - 1 and blob.count(b'"kind"') == n
                and b"\\" not in blob and b"\r" not in blob):
            events = _batch_parse(blob)
            if events is not None and len(events) == n:
                out: list[tuple[dict[str, Any], bytes | None]] = []
                for event, line in zip(events, lines, strict=True):
                    kind = event.get("kind")
                    if type(kind) is not str:
                        break  # then some other line may hold "kind" twice: the per-line way
                    if kind not in SERVER_KINDS and "seq" not in event:
                        out.append((event, line))
                    else:
                        out.append((text_event(stream, line.decode("utf-8", "replace")), None))
                else:
                    return out
    return [to_event(line, stream) for line in lines]


class _Constant(Exception):
    """A ``NaN``/``Infinity`` literal in a batch: it goes the per-line way, which cleans it."""


def _refuse_constant(_name: str) -> None:
    raise _Constant


_BATCH_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _batch_parse(blob: bytes) -> list[Any] | None:
    """The lines of ``blob`` (joined by newlines) parsed as one JSON array; None if they are not
    valid UTF-8 and JSON without ``NaN``/``Infinity``."""
    try:
        parsed = _BATCH_DECODER.decode("[" + blob.decode("utf-8").replace("\n", ",") + "]")
    except (ValueError, RecursionError, _Constant):  # UnicodeDecodeError is a ValueError
        return None
    return parsed if type(parsed) is list else None


def numbered(event: dict[str, Any], raw: bytes | None, seq: int) -> tuple[bytes, dict[str, Any]]:
    """The event with its ``seq``, and its line as stored and sent to machine clients.

    A kit line is kept byte for byte with ``"seq"`` spliced in after its ``{``: no second
    serialisation on the hot path.
    """
    event["seq"] = seq
    if raw is not None:
        rest = raw[1:].lstrip()
        # "{}" has no member to put a comma before (to_event never passes one: a kit line has a kind)
        return (b'{"seq": %d}' % seq if rest.startswith(b"}") else b'{"seq": %d, ' % seq + rest), event
    try:
        return json.dumps(event, ensure_ascii=False, default=str).encode(), event
    except UnicodeEncodeError:
        # A server event carrying a lone surrogate (an OS error message about a surrogate-escaped
        # file name): stored and shown with U+FFFD, the event and its line alike.
        event = _clean(event)[0]
        return json.dumps(event, ensure_ascii=False, default=str).encode(), event


def numbered_all(events: list[tuple[dict[str, Any], bytes | None]],
                 seq: int) -> list[tuple[bytes, dict[str, Any]]]:
    """:func:`numbered` for a batch from ``seq`` on; a kit line whose ``{`` is followed by its
    first key's quote (every kit line) is spliced without the checks, the rest as ``numbered``."""
    out: list[tuple[bytes, dict[str, Any]]] = []
    append = out.append
    for event, raw in events:
        if raw is not None and raw[1] == 34:  # b'"'
            event["seq"] = seq
            append((b'{"seq": %d, ' % seq + raw[1:], event))
        else:
            append(numbered(event, raw, seq))
        seq += 1
    return out

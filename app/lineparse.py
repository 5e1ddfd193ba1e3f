"""Many stored lines parsed at once, each exactly as :func:`app.output.safe_parse` parses it alone.

A view model built from a finished flood parses a million lines (app/viewmodel.py). Most of what
``json.loads`` does per line is making the same keys again ("seq", "t", "kind", ...): the scanner
shares them only within one call. So a run of lines is parsed as one JSON array, in one call, when
that is sure to give what each line gives alone; the rest go through ``safe_parse``.

When it is sure (the argument of :func:`app.output.to_events`, which parses a pipe read this way):
every line starts with its only ``{`` and ends with its only ``}``. An array element can then only
start at a line's first byte and end at a line's last, so elements are runs of whole lines, and as
many elements as lines means one line each, parsed as the line alone would be. No backslash means
no escapes, so no lone surrogate to clean; a ``NaN`` or ``Infinity`` aborts the batch, and so does
invalid UTF-8: those lines need ``safe_parse``'s cleaning. A batch that fails the shape (a thread
snapshot nests objects, a message escapes a quote) is parsed line by line.
"""

from __future__ import annotations

import json
from typing import Any

from .output import safe_parse


class _Constant(Exception):
    """A ``NaN``/``Infinity`` literal: ``safe_parse`` reads it as null, which this batch cannot."""


def _refuse_constant(_name: str) -> None:
    raise _Constant


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_lines(lines: list[bytes]) -> list[dict[str, Any] | None]:
    """``[safe_parse(line) for line in lines]`` for lines without newlines (a log read's): in one
    call when the lines have the shape that makes it exact, else line by line. Give it tens of
    lines, not thousands: a fold that parses far ahead of itself holds all those events at once,
    and a snapshot's nested rows make that cost more than the batch saves (app/viewmodel.py)."""
    parsed = _as_array(lines) if len(lines) > 1 else None
    return parsed if parsed is not None else [safe_parse(line) for line in lines]


def _as_array(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """The lines parsed as one array, or None when that would not be exactly each line's parse."""
    n = len(lines)
    blob = b"\n".join(lines)
    if not (blob.startswith(b"{") and blob.endswith(b"}") and blob.count(b"{") == n
            and blob.count(b"}") == n and blob.count(b"\n{") == n - 1 and blob.count(b"}\n") == n - 1
            and b"\\" not in blob):
        return None
    try:
        parsed = _DECODER.decode("[" + blob.decode("utf-8").replace("\n", ",") + "]")
    except (ValueError, RecursionError, _Constant):  # UnicodeDecodeError is a ValueError
        return None
    return parsed if type(parsed) is list and len(parsed) == n else None

"""One file holding a JSON header and named columns of numbers, checksummed: how a finished run's view
model is kept beside its log (app/model_store.py says what goes in it). No pickle, nothing that
could run code when read: JSON, and raw little-endian arrays of three types::

    <magic> <version> <header bytes> <header crc32>\\n
    <header: a JSON object, with "arrays" (each column's length) and "crc" (the columns' crc32)>
    <each column's bytes, in the order the reader names them>

:func:`read` checks everything a damaged, truncated, foreign or other-version file would get wrong
before it returns anything, and raises :class:`BadFile` (a ValueError) then.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
import zlib
from array import array
from pathlib import Path
from typing import Any

MAX_HEADER = 256 << 20  # bytes; a header beyond this is not one we wrote
WIDTHS = {"d": 8, "q": 8, "I": 4}  # float64, int64, uint32
# The file says little-endian widths; a platform whose arrays differ cannot read or write one.
USABLE = all(array(code).itemsize == width for code, width in WIDTHS.items())
_SWAP = sys.byteorder == "big"


class BadFile(ValueError):
    """Not a file :func:`write` wrote with this magic and version, or damaged since."""


def write(path: Path, magic: bytes, version: int, header: dict[str, Any],
          columns: list[tuple[str, array]]) -> None:
    """Write the file atomically: a reader finds the old file, the new one, or none."""
    if not USABLE:
        raise ValueError("this platform's arrays are not the widths the file format has")
    # The columns go out as they are, never copied into one payload: a million-event model is
    # tens of megabytes, and the builder's memory is the server machine's too.
    crc = 0
    for _, column in columns:
        crc = zlib.crc32(_little(column), crc)
    raw = json.dumps({**header, "arrays": {name: len(column) for name, column in columns},
                      "crc": crc}, separators=(",", ":")).encode()
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"%s %d %d %d\n" % (magic, version, len(raw), zlib.crc32(raw)))
            f.write(raw)
            for _, column in columns:
                f.write(_little(column))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _little(column: array) -> memoryview:
    """The column's bytes as the file has them (little-endian): its own memory, where it can be."""
    if _SWAP:
        column = array(column.typecode, column)
        column.byteswap()
    return memoryview(column).cast("B")


def read(path: Path, magic: bytes, version: int,
         names: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], dict[str, array]]:
    """The header and the columns ``names`` (name, typecode) of the file at ``path``."""
    if not USABLE:
        raise BadFile("this platform's arrays are not the widths the file format has")
    with open(path, "rb") as f:
        first = f.readline(len(magic) + 80).split()
        words = len(magic.split())
        if len(first) != words + 3 or b" ".join(first[:words]) != magic \
                or not all(x.isdigit() for x in first[words:]):
            raise BadFile("not a file of this kind")
        found, size, crc = (int(x) for x in first[words:])
        if found != version:
            raise BadFile(f"a version {found} file; this is version {version}")
        raw = f.read(min(size, MAX_HEADER + 1))
        if len(raw) != size or size > MAX_HEADER or zlib.crc32(raw) != crc:
            raise BadFile("header truncated or damaged")
        try:
            header = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise BadFile("header is not JSON") from exc
        counts = header.get("arrays") if isinstance(header, dict) else None
        if not isinstance(counts, dict) or set(counts) != {name for name, _ in names}:
            raise BadFile("header names other columns")
        columns, payload_crc = {}, 0
        for name, code in names:
            n = counts[name]
            if type(n) is not int or n < 0:
                raise BadFile(f"{name}: no length")
            data = f.read(n * WIDTHS[code])
            if len(data) != n * WIDTHS[code]:
                raise BadFile("columns truncated")
            payload_crc = zlib.crc32(data, payload_crc)
            columns[name] = array(code, data)
            if _SWAP:
                columns[name].byteswap()
        if f.read(1):
            raise BadFile("trailing bytes")
    if payload_crc != header.get("crc"):
        raise BadFile("columns damaged")
    return header, columns

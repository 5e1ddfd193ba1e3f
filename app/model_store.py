"""A finished run's view model saved beside its log (``model.bin``), so a first look at a long run
reads a few megabytes instead of folding every event again (app/models.py decides when).

The file (app/model_file.py: a JSON header and little-endian columns, checksummed, no pickle)
holds the model's long columns: the log-row times and seqs, the instants, and every lane's state
changes (``ct``/``cs``/``co``), samples (``st``/``si``) and marks (``mt``/``mk`` and the header's
``titles``), laid end to end, each lane saying how many are its own. ``cs``, ``co`` (from 1; 0 is
None) and ``mk`` index the header's ``strings``, ``si`` its distinct samples (``infos``): what
repeats is stored once. ``offsets`` is the log's own index (where each line starts): given to the
log, it spares the next reader of the run a pass over the whole file. The header's ``history``
says where the newest log rows are (app/models.py's ``page_history``).

The header records the log the model was folded from (size and modification time): a model whose
log has changed since, from another version, truncated, or failing its checksums or its checks
field by field is not loaded (:func:`load_into` says False), and the run is folded again.

A saved model is complete: its run had ended. It is never folded further, so the indexes a fold
keeps to find lanes (by ident, by name) are not saved.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import deque
from itertools import islice
from operator import lt
from pathlib import Path
from typing import Any

from . import model_file
from .eventlog import EventLog
from .lanes import Lane
from .viewmodel import HISTORY_ROWS, LATEST_KINDS, ViewModel

FILE = "model.bin"
VERSION = 1
MAGIC = b"threadlab view model"
# The columns, in file order: name, array typecode (model_file.WIDTHS).
COLUMNS = (("log_t", "d"), ("log_seq", "q"), ("times", "d"), ("ct", "d"), ("cs", "I"), ("co", "I"),
           ("st", "d"), ("si", "I"), ("mt", "d"), ("mk", "I"), ("offsets", "q"))


class BadModel(ValueError):
    """The saved model cannot be used: absent, stale, another version, or not what we wrote."""


def stamp(log_path: Path) -> dict[str, int]:
    """What identifies the log's content: its size and modification time (in nanoseconds)."""
    st = os.stat(log_path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


# -- saving -------------------------------------------------------------------------------------

def save(model: ViewModel, log: EventLog, log_stamp: dict[str, int]) -> Path:
    """Write ``model`` (complete, folded from ``log`` as it was at ``log_stamp``) and the log's index
    beside the log, atomically: a reader finds the old file, the new one, or none. Raises OSError,
    ValueError."""
    if not model.complete:
        raise ValueError("only a complete model is saved")
    offsets, size = log.index()
    if len(offsets) != model.count or size != log_stamp["size"]:
        raise ValueError("the log is not the one the model was folded from")
    strings: dict[str, int] = {}  # states, objects and mark kinds, each once
    infos: dict[str, int] = {}  # distinct samples (where, line, holds, waiting_for), as JSON, each once
    columns = {name: array(code) for name, code in COLUMNS}
    titles: list[str] = []
    lanes = []
    for lane in model._lanes:  # complete: nothing changes the model any more, no lock needed
        columns["ct"].extend(lane.ct)
        columns["st"].extend(lane.st)
        columns["cs"].extend(strings.setdefault(s, len(strings)) for s in lane.cs)
        columns["co"].extend(0 if o is None else strings.setdefault(o, len(strings)) + 1 for o in lane.co)
        columns["si"].extend(infos.setdefault(json.dumps(info), len(infos)) for info in lane.si)
        columns["mt"].extend(t for t, _, _ in lane.marks)
        columns["mk"].extend(strings.setdefault(kind, len(strings)) for _, kind, _ in lane.marks)
        titles.extend(title for _, _, title in lane.marks)
        lanes.append({"name": lane.name, "display": lane.display, "ident": lane.ident,
                      "native": lane.native, "daemon": lane.daemon, "start": lane.start,
                      "end": lane.end, "crash": lane.crash, "claimed": lane.claimed, "seen": lane.seen,
                      "by_event": lane.by_event, "traced": lane.traced, "changes": len(lane.ct),
                      "samples": len(lane.st), "marks": len(lane.marks)})
    columns.update(log_t=model._log_t, log_seq=model._log_seq, times=model._times, offsets=offsets)
    header = {
        "log": {**log_stamp, "events": model.count}, "first_t": model.first_t, "last_t": model.last_t,
        "status": model.status, "exit_code": model.exit_code, "results": model.results,
        "exception": model.exception, "marks": model._marks, "deadlocks": model._deadlocks,
        "strings": list(strings), "infos": [json.loads(info) for info in infos], "titles": titles,
        "lanes": lanes,
        "history": {"rows": model.rows, "newest_rows": list(model.newest_rows), "newest": model.newest},
    }
    path = log.path.parent / FILE
    model_file.write(path, MAGIC, VERSION, header, [(name, columns[name]) for name, _ in COLUMNS])
    return path


# -- loading ------------------------------------------------------------------------------------

def load_into(model: ViewModel, log: EventLog) -> bool:
    """Fill ``model`` (fresh: nothing folded yet; the caller holds its lock) from the model saved
    beside ``log`` if it was folded from the log as it is now, and give the log its saved index.
    False, ``model`` and ``log`` untouched, if not."""
    try:
        header, columns = _read(log.path.parent / FILE, stamp(log.path))
        _check_index(columns["offsets"], header["log"])
        _fill(model, header, columns)
        log.adopt_index(columns["offsets"], header["log"]["size"])
    except (OSError, ValueError, LookupError, TypeError, ArithmeticError):
        return False  # BadModel, or a check that missed a way to be wrong: either way, fold again
    return True


def _read(path: Path, log_stamp: dict[str, int]) -> tuple[dict[str, Any], dict[str, array]]:
    header, columns = model_file.read(path, MAGIC, VERSION, COLUMNS)
    if header.get("log") != {**log_stamp, "events": _get(header.get("log"), "events", int)}:
        raise BadModel("folded from another version of the log")
    return header, columns


def _get(obj: Any, key: str, *types: type, none: bool = False) -> Any:
    """``obj[key]``, checked to be one of ``types`` (None allowed if ``none``; a bool is no number)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and none:
        return None
    if isinstance(value, bool) and bool not in types:
        raise BadModel(f"{key}: not a {types}")
    if not isinstance(value, types):
        raise BadModel(f"{key}: not a {types}")
    return value


def _fill(model: ViewModel, header: dict[str, Any], columns: dict[str, array]) -> None:
    """Check every field the model's questions use, then (only then) put them in ``model``."""
    strings, titles = _get(header, "strings", list), _get(header, "titles", list)
    if not all(isinstance(s, str) for s in [*strings, *titles]):
        raise BadModel("strings")
    infos = [_sample(info) for info in _get(header, "infos", list)]
    ct, cs, co, st, si, mt, mk = (columns[name] for name in ("ct", "cs", "co", "st", "si", "mt", "mk"))
    if (len(columns["log_t"]) != len(columns["log_seq"]) or not len(ct) == len(cs) == len(co)
            or len(st) != len(si) or not len(mt) == len(mk) == len(titles)):
        raise BadModel("column lengths")
    if max(cs, default=-1) >= len(strings) or max(co, default=0) > len(strings) \
            or max(mk, default=-1) >= len(strings) or max(si, default=-1) >= len(infos):
        raise BadModel("table index")
    lanes, at_change, at_sample, at_mark = [], 0, 0, 0
    for entry in _get(header, "lanes", list):
        lane = Lane(_get(entry, "name", str), None, _get(entry, "start", float, int))
        lane.display = _get(entry, "display", str)
        lane.ident, lane.native = entry.get("ident"), entry.get("native")
        lane.end = _get(entry, "end", float, int, none=True)
        lane.crash = _crash(entry.get("crash"))
        for flag in ("daemon", "claimed", "seen", "by_event", "traced"):
            setattr(lane, flag, _get(entry, flag, bool))
        k, m, n = _get(entry, "changes", int), _get(entry, "samples", int), _get(entry, "marks", int)
        if min(k, m, n) < 0 or at_change + k > len(ct) or at_sample + m > len(st) or at_mark + n > len(mt):
            raise BadModel("lane columns")
        lane.ct, lane.st = ct[at_change:at_change + k], st[at_sample:at_sample + m]
        lane.cs = [strings[i] for i in cs[at_change:at_change + k]]
        lane.co = [strings[i - 1] if i else None for i in co[at_change:at_change + k]]
        lane.si = [infos[i] for i in si[at_sample:at_sample + m]]
        lane.marks = list(zip(mt[at_mark:at_mark + n], (strings[i] for i in mk[at_mark:at_mark + n]),
                              titles[at_mark:at_mark + n], strict=True))
        at_change, at_sample, at_mark = at_change + k, at_sample + m, at_mark + n
        lanes.append(lane)
    if at_change != len(ct) or at_sample != len(st) or at_mark != len(mt):
        raise BadModel("lane columns")
    deadlocks = [_deadlock(dl) for dl in _get(header, "deadlocks", list)]
    first_t = _get(header, "first_t", float, int, none=True)
    last_t = _get(header, "last_t", float, int)
    status = _get(header, "status", str, none=True)
    exit_code = _get(header, "exit_code", int, none=True)
    results = _get(header, "results", dict)
    exception = _get(header, "exception", str, none=True)
    marks = _get(header, "marks", int)
    events = header["log"]["events"]
    history = _get(header, "history", dict)
    rows, newest_rows, newest = (_get(history, "rows", int), _get(history, "newest_rows", list),
                                 _get(history, "newest", dict))
    if not all(type(i) is int and 0 <= i < events for i in [*newest_rows, *newest.values()]) \
            or not set(newest) <= LATEST_KINDS or len(newest_rows) > min(rows, HISTORY_ROWS):
        raise BadModel("history")
    # Checked: now the model takes it all (its caller holds its lock; it had folded nothing).
    model._lanes, model._deadlocks = lanes, deadlocks
    model._log_t, model._log_seq, model._times = columns["log_t"], columns["log_seq"], columns["times"]
    model._sorted_times = None
    model.first_t, model.last_t, model.status, model.exit_code = first_t, last_t, status, exit_code
    model.results, model.exception, model._marks = results, exception, marks
    model.rows, model.newest_rows, model.newest = rows, deque(newest_rows, maxlen=HISTORY_ROWS), newest
    model._cursor, model._complete = events - 1, True


def _check_index(offsets: array, log: dict[str, int]) -> None:
    """The saved index fits the log: a line each, from the file's start, in order, within it."""
    if len(offsets) != log["events"] or (offsets and (offsets[0] != 0 or offsets[-1] >= log["size"])):
        raise BadModel("index")
    if not all(map(lt, offsets, islice(offsets, 1, None))):  # C-level: ~20 ms for a million
        raise BadModel("index order")


def _crash(crash: Any) -> dict[str, Any] | None:
    if crash is None:
        return None
    _get(crash, "type", str), _get(crash, "message", str), _get(crash, "t", float, int)
    return crash


def _sample(info: Any) -> tuple:
    if not isinstance(info, list) or len(info) != 4 or not isinstance(info[2], list):
        raise BadModel("sample")
    where, line, holds, waiting = info
    if not all(isinstance(h, str) for h in holds) or not isinstance(waiting, (str, list, type(None))):
        raise BadModel("sample")
    return where, line, tuple(holds), tuple(waiting) if isinstance(waiting, list) else waiting


def _deadlock(dl: Any) -> dict[str, Any]:
    _get(dl, "formed", float, int), _get(dl, "since", float, int)
    _get(dl, "broken", float, int, none=True)
    if not isinstance(dl.get("cycle"), list) or not all(isinstance(c, dict) for c in dl["cycle"]):
        raise BadModel("deadlock")
    return {"formed": dl["formed"], "broken": dl["broken"], "how": dl.get("how"), "cycle": dl["cycle"],
            "since": dl["since"]}

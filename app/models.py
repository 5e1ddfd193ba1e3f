"""One view model per run, shared by every request that draws or asks about it (app/api.py, the
status line), and the status as a person should read it. The models themselves: app/viewmodel.py.

Where a model comes from: a live run's is folded from its log as viewers ask, a little each time.
A finished run's is loaded from the model saved beside its log when it ended (app/model_builder.py
builds it then, app/model_store.py reads it); without one (a short run, a run older than saving)
it is folded once, on the first look, and saved if the run is long.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict, deque
from typing import Any

from . import model_builder
from .output import safe_parse
from .viewmodel import ViewModel

KEEP_FINISHED = 4  # finished runs whose model stays in memory, least recently used dropped first
CLOSE_WAIT = 10.0  # seconds to wait for a finished run's log to be closed (it takes an fsync)

# _cache_lock guards _cache (run id -> model, least recently used first). Invariants: a live run's
# model is never dropped (its viewers poll it every few seconds; rebuilding would re-read the file),
# nor one not yet complete (someone is loading or folding it: a second viewer must find the same
# model and wait on its lock, not fold the run again); at most KEEP_FINISHED complete ones stay.
# The lock is held only for the table, never while a model folds: lock order is _cache_lock, then
# Run._changed (run.live), and nothing takes them reversed.
_cache: OrderedDict[str, ViewModel] = OrderedDict()
_cache_lock = threading.Lock()
_log = logging.getLogger("threadlab.models")


def model_for(run: Any) -> ViewModel:
    """The run's model, brought up to date with its log."""
    with _cache_lock:
        model = _cache.get(run.id)
        if model is None or model.run is not run:  # a reloaded manager made a new Run for the id
            model = _cache[run.id] = ViewModel(run)
        _cache.move_to_end(run.id)
        # ``done`` is read without the model's lock (which a fold holds for seconds): a bool that
        # only ever turns True, so a stale read keeps a model one call longer, nothing worse.
        finished = [key for key, m in _cache.items() if key != run.id and m.done and not m.run.live]
        for key in finished[:max(0, len(finished) - KEEP_FINISHED + 1)]:
            del _cache[key]
    if not model.done and not run.live:
        if not run.log.closed and not model.count and model_builder.is_long(run.log):
            # The final status is set a moment before the log is closed (and fsynced: a flood's
            # log takes a while). A long one is not folded as a live one meanwhile (and then
            # again by its build): its first look waits for the close.
            run.log.wait(sys.maxsize, CLOSE_WAIT)
        if run.log.closed:
            with model.lock:  # a second viewer waits here, and then finds the model complete
                if not model.count and not model.done:  # nothing folded while it ran, or since
                    model_builder.first_look(model, run.log)
    return model.refresh()


def page_history(run: Any, rows: int) -> dict[str, Any] | None:
    """A finished run's page history from its model, without reading its every event: what a page
    viewer (app/stream.py's PageView, its ``_HISTORY`` fields) holds after taking in the whole log,
    and ``cursor``, the last line that covers. The ``rows`` newest log rows and the newest threads
    snapshot as lines; the newest result, deadlock, stacks, check and prediction as events. None
    while the run is live. A line that is not an event is no row here (the page drops it when it
    draws it, which a reader of every line must count first)."""
    if not run.log.closed:
        return None
    model = model_for(run)
    if not model.done:
        return None
    # Complete: the model no longer changes, so its fields are read without its lock.
    newest_rows = list(model.newest_rows)[-rows:] if rows > 0 else []
    kinds = list(model.newest.items())
    lines = run.log.lines_at(newest_rows + [line for _, line in kinds])
    latest = dict(zip([kind for kind, _ in kinds], lines[len(newest_rows):], strict=True))
    history: dict[str, Any] = {
        "cursor": model.count - 1, "log_total": model.rows, "new_rows": model.rows,
        "rows": deque((line, None) for line in lines[:len(newest_rows)]),
        "threads": (latest["threads"], None) if "threads" in latest else None, "status_changed": True}
    for kind in ("result", "deadlock", "stacks", "check", "prediction"):
        history[kind] = safe_parse(latest[kind]) if kind in latest else None
    return history


def run_ended(run: Any) -> None:
    """The run's supervisor has closed its log: build the run's model now, once, if it is long.
    Never raises (the supervisor's last act must not fail) and never waits."""
    try:
        model_builder.queue_build(run.log)
    except Exception:  # a model not built costs a slow first look, never the run its ending
        _log.exception("queueing the view model of run %s", run.id)


def status_text(run: Any, model: ViewModel) -> dict[str, Any]:
    """The run's status as a person should read it: ``{"text": "exited 0 · 2 threads crashed",
    "warning": True}``. An exit code of 0 with crashed threads or a failed check is not a success."""
    status, code = run.status, run.exit_code
    summary = model.summary()
    text = f"{status} {code}" if code is not None and status in ("exited", "failed") else status
    parts = [text]
    if summary["crashed"]:
        parts.append(f"{summary['crashed']} thread{'s' if summary['crashed'] != 1 else ''} crashed")
    if summary["deadlocked"]:
        parts.append("deadlocked")
    if summary["result_failed"]:
        parts.append(summary["why"] if status == "exited" and summary["why"] else "result failed")
    elif status == "failed" and summary["why"]:
        parts.append(summary["why"].split(": ", 1)[-1])
    warning = status in ("failed", "killed", "timeout", "interrupted") or len(parts) > 1
    return {"text": " · ".join(parts), "warning": warning}

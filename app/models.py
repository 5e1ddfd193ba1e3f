"""One view model per run, shared by every request that draws or asks about it (app/api.py, the
status line), and the status as a person should read it. The models themselves: app/viewmodel.py.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .viewmodel import ViewModel

KEEP_FINISHED = 4  # finished runs whose model stays in memory, least recently used dropped first

# _cache_lock guards _cache (run id -> model, least recently used first). Invariants: a live run's
# model is never dropped (its viewers poll it every few seconds; rebuilding would re-read the file);
# at most KEEP_FINISHED finished ones stay. The lock is held only for the table, never while a
# model folds: lock order is _cache_lock, then Run._changed (run.live), and nothing takes them reversed.
_cache: OrderedDict[str, ViewModel] = OrderedDict()
_cache_lock = threading.Lock()


def model_for(run: Any) -> ViewModel:
    """The run's model, brought up to date with its log."""
    with _cache_lock:
        model = _cache.get(run.id)
        if model is None or model.run is not run:  # a reloaded manager made a new Run for the id
            model = _cache[run.id] = ViewModel(run)
        _cache.move_to_end(run.id)
        finished = [key for key, m in _cache.items() if key != run.id and not m.run.live]
        for key in finished[:max(0, len(finished) - KEEP_FINISHED + 1)]:
            del _cache[key]
    return model.refresh()


def forget(run_id: str) -> None:
    with _cache_lock:
        _cache.pop(run_id, None)


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

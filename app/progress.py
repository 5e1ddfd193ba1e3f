"""A learner's progress, kept per browser (no accounts): exercises tried and solved, predictions made.

One JSON file per browser under ``<data dir>/progress/``, named by the browser's hashed id. Written by
run supervisors (a check when a run ends) and read by request threads (the index, the cards): every
read-modify-write happens under one lock, so two runs ending at once cannot lose each other's try.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

RECENT = 10  # verdicts kept per exercise, newest first: enough for a check over several runs
PREDICTIONS = 50  # predictions kept per lesson
_BROWSER = re.compile(r"^[0-9a-f]{8,64}$")  # security.browser_id(): a hex hash, never a path


class Progress:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        # Invariant: every file in folder was written whole (temp name, then os.replace) by a
        # thread holding _lock, and each update reads the file and writes it back under it.
        self._lock = threading.Lock()

    def of(self, browser: str) -> dict[str, Any]:
        """Everything kept for ``browser``: ``{lesson number: {"exercises": {n: {...}},
        "predictions": [...]}}`` (empty when nothing is, or the browser id is not one of ours)."""
        with self._lock:
            return self._read(browser)

    def solved(self, browser: str, lesson: str, kind: str = "exercises") -> dict[int, dict[str, Any]]:
        """The exercises (or levels) of one lesson this browser tried, by number: ``tries``,
        ``passed``, an exercise's ``misses`` (tries whose own run missed the goal) and a level's
        ``best`` (the fewest steps it was solved in)."""
        kept = self.of(browser).get(lesson, {}).get(kind, {})
        return {int(n): entry for n, entry in kept.items() if str(n).isdigit()}

    def add_try(self, browser: str, lesson: str, n: int,
                decide: Callable[[list[bool]], dict[str, Any]], kind: str = "exercises") -> dict[str, Any]:
        """Record one checked run of exercise ``n``. ``decide`` gets the earlier verdicts (newest
        first) and returns the check; both happen under the lock, so the "runs in a row" of a
        check over several runs counts every run exactly once, whichever ends first."""
        with self._lock:
            data = self._read(browser)
            entry = data.setdefault(lesson, {}).setdefault(kind, {}).setdefault(
                str(n), {"tries": 0, "passed": False, "recent": []})
            check = decide(list(entry.get("recent", [])))
            if check["passed"] and isinstance(check.get("steps"), int):  # a level: fewest steps
                entry["best"] = min(check["steps"], entry.get("best", check["steps"]))
            entry["tries"] = int(entry.get("tries", 0)) + 1
            this_run = check.get("this_run", check["passed"])
            if kind == "exercises":  # a level's hints come one per try: it has no streak
                # A miss is a run that missed the goal itself; a good run of a streak not yet long
                # enough is a try but no miss (no hint: the learner is on the right track).
                entry["misses"] = int(entry.get("misses", 0)) + (0 if this_run else 1)
            entry["passed"] = bool(entry.get("passed")) or check["passed"]
            entry["recent"] = [this_run, *entry.get("recent", [])][:RECENT]
            self._write(browser, data)
            return check

    def add_prediction(self, browser: str, lesson: str, run_id: str, reveal: dict[str, Any]) -> None:
        with self._lock:
            data = self._read(browser)
            kept = data.setdefault(lesson, {}).setdefault("predictions", [])
            kept.insert(0, {"run": run_id, **reveal})
            del kept[PREDICTIONS:]
            self._write(browser, data)

    def _path(self, browser: str) -> Path | None:
        return self.folder / f"{browser}.json" if _BROWSER.match(browser or "") else None

    def _read(self, browser: str) -> dict[str, Any]:
        path = self._path(browser)
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            return {}  # none yet, or a file a person broke: start again rather than fail a page
        return data if isinstance(data, dict) else {}

    def _write(self, browser: str, data: dict[str, Any]) -> None:
        path = self._path(browser)
        if path is None:
            return  # a script without a browser id: nothing to keep
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk costs the learner a tick, not the run

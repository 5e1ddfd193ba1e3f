"""Experiments: one lesson run many times, perhaps over a swept parameter, and what came out.

Ownership, as in app/run.py:

- A running experiment's **scheduler** thread is the only writer of its record: it starts the
  planned runs through the run manager as slots free up (never more than ``max_live - RESERVE``
  live, so a person can always start a run of their own), reads each run's ``result`` once the run
  is final, saves the record, and on cancel stops its live runs and skips the queued ones.
- **Request threads** read an experiment through :meth:`Experiment.snapshot` (a copy taken under
  ``_lock``) and ask for a cancel with :meth:`Experiment.cancel`: an Event, plus a poke of the run
  manager's Condition so the scheduler wakes. They never change the record.
- The scheduler never polls: it waits on the run manager's ``wait_released``, which wakes when any
  slot is given back, which also happens after each run's final status (app/runs.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import defaults
from .experiment_stats import NOT_STARTED
from .lesson import Lesson
from .output import safe_parse
from .record import FINAL, new_run_id
from .run import Run
from .runs import RunLimitError, RunManager, StartError

_log = logging.getLogger("threadlab.experiments")

MAX_RUNS = 200  # runs in one experiment: 200 runs of a 1 s lesson on 2 cores is a few minutes
MAX_SWEEP_VALUES = 10  # more groups than this no longer fit one readable plot on a projector
RESERVE = 1  # slots an experiment leaves free: a learner's own Run must never queue behind it
STOP_WAIT = defaults.INTERRUPT_GRACE + defaults.TERMINATE_GRACE + 1.0  # a stopped run's longest end
WAKE_S = 30.0  # a safety net only: every real wake-up comes from the run manager's Condition
STATUSES = ("running", "done", "cancelled", "interrupted")


@dataclass
class Plan:
    """One planned run: the sweep value it has, its checked params and argv (server-side only)."""

    sweep: Any
    params: dict[str, Any]
    argv: list[str]


@dataclass
class ExperimentRecord:
    id: str
    lesson: str
    title: str
    params: dict[str, Any]
    repeat: int
    sweep: dict[str, Any] | None  # {"name": ..., "values": [...]} or None
    # One entry per planned run, in start order: sweep, id (None until started), status, values.
    runs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    reason: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def save(self, folder: Path) -> None:
        """``<id>.json`` written atomically, a temp name per write (see RunRecord.save)."""
        tmp = folder / f"{self.id}.json.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
            os.replace(tmp, folder / f"{self.id}.json")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def result_values(run: Run) -> dict[str, float]:
    """The numbers of the run's last ``result`` event (booleans and text left out)."""
    values: dict[str, Any] = {}
    cursor = -1
    while batch := run.log.read(cursor, 10_000):
        cursor += len(batch)
        for line, _ in batch:
            if b'"result"' in line and (event := safe_parse(line)) and event.get("kind") == "result":
                values = event.get("values") if isinstance(event.get("values"), dict) else {}
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Experiment:
    def __init__(self, record: ExperimentRecord, folder: Path, plans: list[Plan] | None = None,
                 lesson: Lesson | None = None) -> None:
        self.record = record
        self.folder = folder
        self._plans, self._lesson = plans or [], lesson
        # Guards record.runs, status, reason and ended: the scheduler holds it to change them (never
        # across I/O or a wait), readers to copy them.
        self._lock = threading.Lock()
        self._cancel = threading.Event()  # set once by cancel(), under _lock; the scheduler acts on it
        self._cancel_reason = "cancelled"  # under _lock: the first cancel's reason wins
        self._thread: threading.Thread | None = None

    id = property(lambda self: self.record.id)

    @property
    def status(self) -> str:
        with self._lock:
            return self.record.status

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = asdict(self.record)
        data["cancelling"] = self._cancel.is_set() and data["status"] == "running"
        return data

    def run_ids(self) -> list[str]:
        with self._lock:
            return [slot["id"] for slot in self.record.runs if slot["id"]]

    def cancel(self, runs: RunManager | None, reason: str = "cancelled") -> None:
        """Ask the scheduler to stop; it stops the live runs and skips the queued ones."""
        with self._lock:  # checked and set in one step: two cancels cannot both pick the reason
            if not self._cancel.is_set() and self.record.status == "running":
                self._cancel_reason = reason
                self._cancel.set()
        if runs is not None:
            runs.poke()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the scheduler: the only writer from here on --------------------------------------------

    def start(self, runs: RunManager) -> None:
        self._thread = threading.Thread(target=self._schedule, args=(runs,), daemon=True,
                                        name=f"threadlab-experiment-{self.id[-6:]}")
        self._thread.start()

    def _set(self, index: int | None = None, save: bool = True, **fields: Any) -> None:
        with self._lock:
            if index is None:
                for name, value in fields.items():
                    setattr(self.record, name, value)
            else:
                self.record.runs[index].update(fields)
            copy = ExperimentRecord(**asdict(self.record))
        if save:
            try:
                copy.save(self.folder)
            except OSError as exc:  # the page still shows it; the file catches up on the next save
                _log.warning("cannot save experiment %s: %s", self.id, exc)

    def _schedule(self, runs: RunManager) -> None:
        try:
            reason = self._feed(runs)
        except Exception:
            _log.exception("experiment %s: scheduler failed", self.id)
            reason = "interrupted"
        with self._lock:
            why = "" if reason is None else self._cancel_reason
        self._set(status="done" if reason is None else reason, ended=time.time(), reason=why)

    def _feed(self, runs: RunManager) -> str | None:
        """Start runs as slots free up and collect them as they end; None when all ran."""
        pending = deque(range(len(self._plans)))
        live: dict[int, Run] = {}
        reserve = min(RESERVE, runs.max_live - 1)
        while pending or live:
            seen = runs.releases()  # read before looking: a release after this wakes the wait below
            if runs.closing.is_set() and not self._cancel.is_set():
                self.cancel(None, "server stopping")
            if self._cancel.is_set():
                return self._wind_down(runs, pending, live)
            for index, run in list(live.items()):
                if run.wait_final(0):
                    self._set(index, status=run.status, values=result_values(run))
                    del live[index]
            while pending and not self._cancel.is_set():
                plan = self._plans[pending[0]]
                try:
                    run = runs.start(self._lesson, plan.params, plan.argv, reserve=reserve)
                except RunLimitError:
                    break  # no slot for us now: a release will wake us
                except StartError as exc:
                    self._set(pending.popleft(), status="failed", error=str(exc))
                    continue
                live[index := pending.popleft()] = run
                self._set(index, id=run.id, status=run.status)
            if pending or live:
                runs.wait_released(seen, WAKE_S)
        return None

    def _wind_down(self, runs: RunManager, pending: deque[int], live: dict[int, Run]) -> str:
        for index in pending:
            self._set(index, save=False, status=NOT_STARTED)
        for run in live.values():
            runs.stop(run, reason="experiment cancelled")  # answered in ms by its supervisor
        for index, run in live.items():
            if not run.wait_final(STOP_WAIT):
                run.request("kill")
                run.wait_final(1.0)
            self._set(index, status=run.status, values=result_values(run))
        with self._lock:
            return "interrupted" if self._cancel_reason == "server stopping" else "cancelled"


class ExperimentManager:
    """Every experiment of the data dir, by id; the ones running have a scheduler thread each."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "experiments"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.runs: RunManager | None = None  # attached once the run manager exists (it pins ours)
        self._lock = threading.Lock()  # guards _experiments and _closing
        self._experiments: dict[str, Experiment] = {}
        self._closing = False
        self.reload()

    def reload(self) -> None:
        """Read the folder again; an experiment left running by a dead server is interrupted."""
        found = {}
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = ExperimentRecord(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                _log.warning("skipped an experiment file: %s: %s", path.name, exc)
                continue
            if record.status == "running":
                for slot in record.runs:
                    if slot["status"] not in (*FINAL, "failed", NOT_STARTED):
                        slot["status"] = "interrupted" if slot["id"] else NOT_STARTED
                record.status, record.ended, record.reason = "interrupted", time.time(), "server stopped"
                try:
                    record.save(self.folder)
                except OSError as exc:
                    _log.warning("cannot mark experiment %s interrupted: %s", record.id, exc)
            found[record.id] = Experiment(record, self.folder)
        with self._lock:
            self._experiments = found

    def get(self, experiment_id: str) -> Experiment | None:
        with self._lock:
            return self._experiments.get(experiment_id)

    def all(self) -> list[Experiment]:
        with self._lock:
            return sorted(self._experiments.values(), key=lambda e: e.record.started, reverse=True)

    def pinned(self) -> set[str]:
        """Run ids some experiment shows: pruning must keep them (RunManager.pinned)."""
        return {run_id for experiment in self.all() for run_id in experiment.run_ids()}

    def create(self, lesson: Lesson, params: dict[str, Any], repeat: int,
               sweep: dict[str, Any] | None, plans: list[Plan]) -> Experiment:
        """Save the experiment and start its scheduler; raises RunLimitError when stopping."""
        record = ExperimentRecord(id=new_run_id(), lesson=lesson.id, title=lesson.title,
                                  params=params, repeat=repeat, sweep=sweep,
                                  runs=[{"sweep": p.sweep, "id": None, "status": "queued", "values": {}}
                                        for p in plans])
        experiment = Experiment(record, self.folder, plans, lesson)
        with self._lock:
            if self._closing or self.runs is None:
                raise RunLimitError("the server is shutting down")
            record.save(self.folder)  # under the lock: shutdown cannot miss a new experiment
            self._experiments[record.id] = experiment
            experiment.start(self.runs)
        return experiment

    def shutdown(self) -> list[Experiment]:
        """Cancel every running experiment (their runs are stopped by the run manager's shutdown)."""
        with self._lock:
            self._closing = True
            running = [e for e in self._experiments.values() if e.status == "running"]
        for experiment in running:
            experiment.cancel(self.runs, "server stopping")
        return running

"""The run manager: which runs exist, who is watching them, and when old ones go.

Each run is owned by its supervisor (app/supervisor.py), which alone changes it; see app/run.py
for what everyone else may do. Which runs hold one of the ``max_live`` slots is the slots' own
business (app/slots.py, under their own lock; a run that could not start never holds one). The
manager owns only its own tables, under one lock:

- ``_runs``: every run of the data dir, by id;
- ``_viewers``: how many viewers are reading each run's files right now. A viewer finds a run and
  is counted in one step (:meth:`RunManager.view`), so a run is pruned only when nobody reads it;
  one due for pruning while watched goes when its last viewer leaves.

The data dir's folders are read, made and deleted by app/run_folders.py.

``pinned`` (a callable returning run ids) names the runs an experiment still shows: pruning leaves
them alone and does not count them against ``keep_runs``.

The lock is never held across I/O or while waiting for a run; the slots' lock, a leaf, may be
taken under it.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import defaults, run_folders
from .checking import Practice
from .lesson import Lesson
from .progress import Progress
from .record import RunRecord, new_run_id
from .run import Command, Run
from .slots import RunLimitError as RunLimitError  # raised by start(): callers catch it from here
from .slots import Slots
from .supervisor import Supervisor
from .worker import PROJECT_ROOT, worker_argv, worker_env


class StartError(RuntimeError):
    """The run could not be started, and holds nothing: the API answers ``http_status``."""

    http_status = 503


class StorageError(StartError):
    """The data dir cannot take a new run: 507 when it is full, else 503."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"cannot store a new run in the data dir: {exc.strerror or exc}")
        self.http_status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 503


class RunManager:
    def __init__(self, data_dir: Path, *, time_limit: float = defaults.RUN_TIME_LIMIT,
                 max_live: int = defaults.MAX_LIVE_RUNS, sample_interval: float = defaults.SAMPLE_INTERVAL,
                 keep_runs: int = defaults.KEEP_RUNS,
                 pinned: Callable[[], Collection[str]] = tuple) -> None:
        self.runs_dir = Path(data_dir) / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.progress = Progress(Path(data_dir) / "progress")  # learners' exercises and predictions
        self.time_limit = time_limit
        self.max_live = max_live  # what experiments leave room under (the cap itself is slots')
        self.sample_interval = sample_interval
        self.keep_runs = keep_runs  # ended runs kept on disk, those that ended last; 0 keeps all
        self.pinned = pinned  # called without our lock held: it takes the experiments' locks
        self.slots = Slots(max_live)  # the runs holding one of the max_live slots (app/slots.py)
        self._lock = threading.Lock()  # guards _runs and _viewers; see the module docstring
        self._runs: dict[str, Run] = {}
        self._viewers: dict[str, int] = {}
        self.closing = threading.Event()  # set at shutdown; websocket loops end when they see it
        self._load_existing()

    def reload(self) -> None:
        """Forget what is in memory and read the data dir again (see app/serve.py: a new worker)."""
        with self._lock:
            self._runs.clear()
        self._load_existing()

    def _load_existing(self) -> None:
        found = run_folders.load_all(self.runs_dir)
        with self._lock:
            self._runs.update(found)
        self.prune()

    # -- queries -------------------------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def all(self) -> list[Run]:
        with self._lock:
            runs = list(self._runs.values())
        return sorted(runs, key=lambda r: r.started, reverse=True)

    def live_count(self) -> int:
        return len(self.slots.held())

    # -- starting ------------------------------------------------------------------------------

    def start(self, lesson: Lesson, params: dict[str, Any], argv: list[str], *, reserve: int = 0,
              owner: str = "", practice: Practice | None = None, source: str | None = None,
              env: dict[str, str] | None = None) -> Run:
        """Take a slot, write the run's record, hand it to a new supervisor; return once it has
        started its process or failed to. Raises RunLimitError or StorageError, holding nothing.
        ``reserve``: slots that must stay free after this one (experiments leave room for people);
        ``owner``: who may stop it from a page (see security.may_control); ``practice``: an
        exercise to check and a prediction to reveal when it ends; ``source``: code to run instead
        of the lesson file (a learner's edited copy), kept in the run's folder under the lesson's
        file name, so the run's page shows the code that ran; ``env``: the kit's settings for this
        run (step mode, a schedule to replay; see app/stepping.py)."""
        run_id = new_run_id()
        if source is not None:
            lesson = replace(lesson, path=self.runs_dir / run_id / lesson.path.name)
        record = RunRecord(id=run_id, lesson=lesson.id, title=lesson.title, params=params,
                           argv=worker_argv(lesson, argv), signals=list(lesson.signals), owner=owner,
                           exercise=practice.exercise_n("exercise") if practice else None,
                           level=practice.exercise_n("level") if practice else None,
                           scratch=source is not None, step=bool(env))
        self.slots.take(record.id, reserve)  # the cap checked and a slot taken in one step
        try:
            run = run_folders.create(self.runs_dir, record,
                                     None if source is None else (lesson.path, source))
        except OSError as exc:
            self._release(record.id)
            raise StorageError(exc) from exc
        except BaseException:
            self._release(record.id)
            raise
        with self._lock:
            self._runs[run.id] = run
        supervisor = Supervisor(run, record.argv, {**worker_env(self.sample_interval), **(env or {})},
                                str(PROJECT_ROOT),
                                time_limit=self.time_limit, release=self._release, on_end=self._ended,
                                practice=practice)
        try:
            supervisor.start()
        except RuntimeError as exc:  # no thread to be had: the run never started, and holds nothing
            self._never_started(run, f"the server could not start a thread for this run ({exc})")
            raise StartError("the server is too busy to start a run now; try again") from exc
        with run._changed:  # the first status change: running, or failed if it could not start
            run._changed.wait_for(lambda: run.record.status != "starting", timeout=10)
        return run

    def _never_started(self, run: Run, why: str) -> None:
        """End a run whose supervisor never ran (app/run_folders.py writes it), and free its slot."""
        try:
            run_folders.end_unstarted(run, why)
        finally:
            self._release(run.id)

    def _release(self, run_id: str) -> None:
        self.slots.give_back(run_id)

    def releases(self) -> int:
        """A count that grows whenever a slot is given back: pass it to :meth:`wait_released`."""
        return self.slots.releases()

    def wait_released(self, seen: int, timeout: float | None) -> int:
        """Block until a slot is given back after ``releases()`` said ``seen`` (or a poke, or
        shutdown, or ``timeout``); return the new count. A run's slot is given back again after
        its final status (``_ended``), so a waiter that saw a run live is woken once it is final."""
        return self.slots.wait_released(seen, timeout)

    def poke(self) -> None:
        """Wake every :meth:`wait_released` (an experiment was cancelled: its scheduler must look)."""
        self.slots.poke()

    def _ended(self, run: Run) -> None:
        """The supervisor's last act: make room on disk (the slot was freed before the final
        status; freeing it again is harmless, and covers a supervisor that failed before that)."""
        self._release(run.id)
        self.prune()

    # -- asking runs for things ---------------------------------------------------------------

    def stop(self, run: Run, *, reason: str = "stop") -> Command:
        return run.request("stop", reason=reason)

    def send_signal(self, run: Run, name: str) -> Command:
        """A declared signal to the run's process group (the caller checked the name)."""
        return run.request("signal", name=name)

    def step(self, run: Run, line: bytes) -> Command:
        """A step-mode command line for the lesson's stepper (app/stepping.py made it)."""
        return run.request("step", line=line)

    def dump(self, run: Run) -> Command:
        """Ask the lesson's kit for every thread's stack (a ``stacks`` event)."""
        return run.request("dump")

    # -- viewers and pruning ------------------------------------------------------------------

    def view(self, run_id: str) -> Run | None:
        """The run ``run_id`` with one more viewer counted on it, or None if there is none (never
        was, or pruned). Give it back with :meth:`leave`; :meth:`viewing` does both.

        Invariant: a run counted in ``_viewers`` is in ``_runs`` and its folder is on disk. Finding
        the run and counting the viewer are one step under the lock, and :meth:`prune` drops a run
        from ``_runs`` only if it has no viewer, in one step under the same lock: either prune took
        the run first (we answer None) or it sees our viewer (and keeps the run). A lookup and a
        separate registration would let prune delete the folder in between, under a reader."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._viewers[run_id] = self._viewers.get(run_id, 0) + 1
            return run

    def leave(self, run: Run) -> None:
        """One viewer of ``run`` is done reading: a run due for pruning goes with its last viewer."""
        with self._lock:
            self._viewers[run.id] -= 1
            if not self._viewers[run.id]:
                del self._viewers[run.id]
        self.prune()

    @contextmanager
    def viewing(self, run_id: str) -> Iterator[Run | None]:
        """:meth:`view` for a ``with`` block: the run (or None), its files kept until the block ends."""
        run = self.view(run_id)
        try:
            yield run
        finally:
            if run is not None:
                self.leave(run)

    def prune(self) -> None:
        """Delete the runs that ended longest ago beyond ``keep_runs``, folders and all.

        A flood run can leave a hundred megabytes of events behind, and a class runs lessons all
        day: without a bound the data dir only grows. Live runs and runs someone is reading are
        never touched; the ones that ended last are kept (someone is looking at them).
        """
        if not self.keep_runs:
            return
        pinned = set(self.pinned())
        with self._lock:
            # A slot is freed a moment before the final status is set: check both. (The slots'
            # lock is a leaf: taking it under ours cannot deadlock.)
            held = self.slots.held()
            ended = sorted((r for r in self._runs.values()
                            if r.id not in held and r.id not in pinned and not r.live),
                           key=lambda r: r.ended or r.started)
            old = [r for r in ended[:max(0, len(ended) - self.keep_runs)] if r.id not in self._viewers]
            for run in old:
                del self._runs[run.id]  # from here on view() cannot find it: no new viewer
        run_folders.delete(old)

    # -- shutting down -------------------------------------------------------------------------

    def shutdown(self, timeout: float = defaults.SHUTDOWN_S) -> None:
        """Stop every live run, SIGKILL whatever is left after ``timeout``: no process outlives us."""
        held = self.slots.close()  # no run starts from now on; waiting schedulers wake
        with self._lock:
            live = [self._runs[run_id] for run_id in held if run_id in self._runs]
        self.closing.set()
        graces = (timeout * 0.5, timeout * 0.25)  # SIGINT, then SIGTERM, then SIGKILL, in time
        for run in live:
            run.request("stop", reason="server stopping", graces=graces)
        deadline = time.monotonic() + timeout
        for run in live:
            if not run.wait_final(max(0.0, deadline - time.monotonic())):
                run.request("kill")
        for run in live:
            run.wait_final(1.0)

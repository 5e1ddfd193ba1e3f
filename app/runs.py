"""The run manager: which runs exist, which hold a slot, who is watching, and when old ones go.

Each run is owned by its supervisor (app/supervisor.py), which alone changes it; see app/run.py
for what everyone else may do. The manager owns only its own tables, under one lock:

- ``_runs``: every run of the data dir, by id;
- ``_live``: the runs holding one of the ``max_live`` slots. A slot is taken in the same step as the
  cap is checked, and given back by the supervisor's last act, whatever ended the run: a run that
  could not start never holds a slot;
- ``_viewers``: how many viewers are reading each run's files right now. A run is pruned only
  when nobody reads it; one due for pruning while watched goes when its last viewer leaves;
- ``_releases``: how many times a slot was given back (or a waiter poked). ``_freed``, a Condition
  on the same lock, is notified with each; an experiment's scheduler (app/experiments.py) waits on
  it for a free slot or its runs' ends instead of polling.

``pinned`` (a callable returning run ids) names the runs an experiment still shows: pruning leaves
them alone and does not count them against ``keep_runs``.

The lock is never held across I/O or while waiting for a run.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import defaults, output
from .checking import Practice
from .progress import Progress
from .record import BadRecord, RunRecord, load_record, new_run_id
from .registry import Lesson
from .run import Command, Run
from .supervisor import Supervisor
from .worker import PROJECT_ROOT, worker_argv, worker_env

_log = logging.getLogger("threadlab.runs")


class RunLimitError(RuntimeError):
    """Too many runs at once, or the server is stopping; the API answers 429."""


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
        self.max_live = max_live
        self.sample_interval = sample_interval
        self.keep_runs = keep_runs  # ended runs kept on disk, those that ended last; 0 keeps all
        self.pinned = pinned  # called without our lock held: it takes the experiments' locks
        # Guards _runs, _live, _viewers, _releases and _closing; see the module docstring.
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # notified when _releases grows
        self._releases = 0
        self._runs: dict[str, Run] = {}
        self._live: set[str] = set()
        self._viewers: dict[str, int] = {}
        self._closing = False
        self.closing = threading.Event()  # set at shutdown; websocket loops end when they see it
        self._load_existing()

    def reload(self) -> None:
        """Forget what is in memory and read the data dir again (see app/serve.py: a new worker)."""
        with self._lock:
            self._runs.clear()
        self._load_existing()

    def _load_existing(self) -> None:
        found = {}
        for meta in sorted(self.runs_dir.glob("*/run.json")):
            try:
                record = load_record(meta.parent)
            except BadRecord as exc:
                _log.warning("skipped a run folder: %s", exc)  # left for a person to look at
                continue
            if record.status not in ("exited", "failed", "stopped", "killed", "timeout", "interrupted"):
                # Live when the server died: its process died with it (the kit's watchdog). Marked
                # before the log is opened, which a live status would open for appending.
                record.status, record.ended = "interrupted", record.ended or time.time()
                try:
                    record.save(meta.parent)
                except OSError as exc:
                    _log.warning("cannot mark run %s interrupted: %s", record.id, exc)
            found[record.id] = Run(record, meta.parent, live=False)
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
        with self._lock:
            return len(self._live)

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
        with self._lock:
            if self._closing:
                raise RunLimitError("the server is shutting down")
            if len(self._live) >= self.max_live - reserve:
                raise RunLimitError(f"at most {self.max_live} runs at once; stop one first")
            self._live.add(record.id)  # taken with the check: two requests cannot both get the last
        try:
            folder = self.runs_dir / record.id
            folder.mkdir()
            if source is not None:
                lesson.path.write_text(source, encoding="utf-8")
            record.save(folder)
            run = Run(record, folder, live=True)
        except OSError as exc:
            self._release(record.id)
            shutil.rmtree(self.runs_dir / record.id, ignore_errors=True)
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
        """End a run whose supervisor never ran: this request thread is the only one that ever held
        it, so it writes the record and the log's last lines itself, then gives the slot back."""
        try:
            run.log.append(output.numbered_all([(output.text_event("stderr", f"threadlab: {why}"), None),
                                                (output.server_event("status", status="failed",
                                                                     reason=why), None)], 0))
            run.transition("failed", ended=time.time())
            run.record.save(run.folder)
        except Exception:  # the slot goes back whatever failed here
            _log.exception("ending run %s that never started", run.id)
        finally:
            run.log.close()
            self._release(run.id)

    def _release(self, run_id: str) -> None:
        with self._lock:
            self._live.discard(run_id)
            self._releases += 1
            self._freed.notify_all()

    def releases(self) -> int:
        """A count that grows whenever a slot is given back: pass it to :meth:`wait_released`."""
        with self._lock:
            return self._releases

    def wait_released(self, seen: int, timeout: float | None) -> int:
        """Block until a slot is given back after ``releases()`` said ``seen`` (or a poke, or
        shutdown, or ``timeout``); return the new count. A run's slot is given back again after
        its final status (``_ended``), so a waiter that saw a run live is woken once it is final."""
        with self._freed:
            self._freed.wait_for(lambda: self._releases != seen or self._closing, timeout)
            return self._releases

    def poke(self) -> None:
        """Wake every :meth:`wait_released` (an experiment was cancelled: its scheduler must look)."""
        with self._lock:
            self._releases += 1
            self._freed.notify_all()

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

    @contextmanager
    def viewing(self, run: Run) -> Iterator[Run]:
        """Hold the run's files while reading them: pruning waits until the last viewer leaves."""
        with self._lock:
            self._viewers[run.id] = self._viewers.get(run.id, 0) + 1
        try:
            yield run
        finally:
            with self._lock:
                self._viewers[run.id] -= 1
                if not self._viewers[run.id]:
                    del self._viewers[run.id]
            self.prune()

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
            # A slot is freed a moment before the final status is set: check both.
            ended = sorted((r for r in self._runs.values()
                            if r.id not in self._live and r.id not in pinned and not r.live),
                           key=lambda r: r.ended or r.started)
            old = [r for r in ended[:max(0, len(ended) - self.keep_runs)] if r.id not in self._viewers]
            for run in old:
                del self._runs[run.id]  # from here on no new viewer can find it
        for run in old:
            shutil.rmtree(run.folder, ignore_errors=True)

    # -- shutting down -------------------------------------------------------------------------

    def shutdown(self, timeout: float = defaults.SHUTDOWN_S) -> None:
        """Stop every live run, SIGKILL whatever is left after ``timeout``: no process outlives us."""
        with self._lock:
            self._closing = True
            self._freed.notify_all()  # schedulers waiting for a slot will not get one now
            live = [self._runs[run_id] for run_id in self._live if run_id in self._runs]
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

"""Who builds a finished run's saved view model (app/model_store.py), and when: once, when the run
ends, in a process of its own; and what a viewer does who comes while that is under way.

A long run's fold costs seconds of CPU (a million events: about two). Done in the server it would
hold the GIL all that while, and every page and stream of every other run would stutter; done on a
viewer's request it is what made a long run's page slow to open. So the run's supervisor, its last
act, hands the run here (:func:`queue_build`, through ``models.run_ended``); one builder thread
takes the runs in turn, each in ``python -m app.model_builder <run folder>`` at a lower CPU priority,
which folds the log and saves the model beside it. Short runs are left out (below ``BUILD_AT``
bytes of log): a viewer folds them in less time than the process takes to start.

The next viewer loads the saved model (:func:`first_look`). One that comes while its build runs
waits for it (at most ``VIEWER_WAIT``); one that comes before it has started takes the build over
and folds the run itself, and saves what it folded. Either way the run is folded once.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import model_store
from .eventlog import EventLog
from .viewmodel import ViewModel

BUILD_AT = 4 << 20  # bytes of events.jsonl (~25,000 events) from which a finished run's model is saved
BUILD_TIMEOUT = 600.0  # seconds a builder may take before it is killed (a fold of 5M events: ~15 s)
VIEWER_WAIT = 30.0  # seconds a viewer waits for a running build before it folds the run itself
NICE = 10  # the builder's CPU priority: it yields to lessons and the server, not starved by them
ROOT = Path(__file__).resolve().parent.parent

_log = logging.getLogger("threadlab.models")


@dataclass(eq=False)
class Build:
    folder: str
    started: bool = False  # being built: by its process, or by a viewer (app/models.py)
    done: threading.Event = field(default_factory=threading.Event)


# _lock guards _builds, _queue and _worker. Invariants: a run folder has at most one Build, which is
# either queued (in _queue, not started) or started (its process runs, or a viewer folds the run);
# it leaves _builds, and its ``done`` is set, when that has ended. A queued build a viewer takes
# over simply leaves the queue. _worker is the one builder thread, None when the queue is empty and
# no build process runs. Nothing waits while holding _lock.
_lock = threading.Lock()
_builds: dict[str, Build] = {}
_queue: deque[Build] = deque()
_worker: threading.Thread | None = None


def is_long(log: EventLog) -> bool:
    """Whether the log is long enough for its run's model to be built once and saved."""
    try:
        return os.stat(log.path).st_size >= BUILD_AT
    except OSError:
        return False


def queue_build(log: EventLog) -> None:
    """A run whose log is ``log`` has ended (the log is closed): build its model if it is long."""
    global _worker
    if not is_long(log):
        return
    folder = str(log.path.parent)
    with _lock:
        if folder in _builds:
            return
        build = _builds[folder] = Build(folder)
        _queue.append(build)
        if _worker is None:
            _worker = threading.Thread(target=_work, name="threadlab-model-builder", daemon=True)
            try:
                _worker.start()
            except RuntimeError:  # no thread to be had: no build, and the next run's end tries again
                _worker = None
                _queue.remove(build)
                del _builds[folder]
                _log.warning("no thread to build the view model in %s: it is folded when opened",
                             folder)


def _work() -> None:
    global _worker
    while True:
        with _lock:
            if not _queue:
                _worker = None
                return
            build = _queue.popleft()
            build.started = True
        try:
            _run_builder(build.folder)
        except Exception:  # a builder that cannot even start costs its run a slow first open only
            _log.exception("building the view model in %s", build.folder)
        finally:
            with _lock:
                _builds.pop(build.folder, None)
            build.done.set()


def _run_builder(folder: str) -> None:
    # stdin stays open for the builder's life: at end of file (this server is gone) it stops.
    proc = subprocess.Popen([sys.executable, "-m", "app.model_builder", folder], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        code = proc.wait(BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait(5)
    finally:
        proc.stdin.close()
    if code:
        _log.warning("building the view model in %s ended with %s", folder, code)


def first_look(model: ViewModel, log: EventLog) -> None:
    """Bring a fresh model of a finished run (its log closed; the caller holds ``model.lock``) to
    complete: from the saved model, after waiting for its build if one is running; else by folding
    the log here, and saving the result if the run is long. While this viewer folds, it holds the
    run's place in ``_builds``, so a build asked for meanwhile is not started: the run is folded
    once."""
    folder = str(log.path.parent)
    with _lock:
        build = _builds.get(folder)
        mine = build is None or not build.started
        if mine:
            if build is not None:  # queued, not started: this viewer's fold will do
                _queue.remove(build)
            build = _builds[folder] = Build(folder, started=True)
    try:
        if not mine and not build.done.wait(VIEWER_WAIT):
            _log.warning("the view model in %s took over %.0f s to build: folded here", folder,
                         VIEWER_WAIT)
        if model_store.load_into(model, log):
            return
        try:
            log_stamp = model_store.stamp(log.path)  # before the fold: a log changed meanwhile is stale
        except OSError:
            log_stamp = None  # no file (deleted by hand): an empty run, nothing worth saving
        model.refresh()
        if log_stamp is not None:
            keep(model, log, log_stamp)
    finally:
        if mine:
            with _lock:
                del _builds[folder]
            build.done.set()


def keep(model: ViewModel, log: EventLog, log_stamp: dict[str, int]) -> None:
    """Save a model folded from a finished run's log (as it was at ``log_stamp``) beside it, if the
    run is long enough that the next first look should not fold it again."""
    if log_stamp["size"] < BUILD_AT or not model.complete:
        return
    try:
        model_store.save(model, log, log_stamp)
    except (OSError, ValueError) as exc:  # a full disk: the next first look folds again
        _log.warning("cannot save the view model of %s: %s", log.path, exc)


# -- the builder process ------------------------------------------------------------------------

def build(folder: Path) -> bool:
    """Fold the run in ``folder`` and save its model, unless a current one is saved already.
    True if a model was written."""
    log = EventLog(folder / "events.jsonl", live=False)
    log_stamp = model_store.stamp(log.path)  # first: a log changed while folding is then stale
    if model_store.load_into(ViewModel(), log):
        return False
    run: Any = SimpleNamespace(id=folder.name, log=log, live=False)
    model = ViewModel(run).refresh()
    model_store.save(model, log, log_stamp)
    return True


def _exit_with_server() -> None:
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds its lock, and the
    # interpreter aborts at exit when it cannot take it.
    while os.read(0, 4096):
        pass
    os._exit(3)  # the server that asked is gone: nobody will read what we build


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.model_builder RUN_FOLDER", file=sys.stderr)
        return 2
    os.nice(NICE)
    if stat.S_ISFIFO(os.fstat(0).st_mode):  # started by the server (by hand, it runs to the end)
        threading.Thread(target=_exit_with_server, name="threadlab-server-watch", daemon=True).start()
    try:
        build(Path(args[0]))
    except FileNotFoundError:
        return 0  # the run was deleted (pruned) before its turn came
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

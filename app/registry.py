"""The lesson registry: every ``lessons/NN_*.py``, read without running it in the server.

A teacher's file may do anything at import: start threads and join them all, loop, fork, or end in
``raise SystemExit(main())`` with no ``__main__`` guard. So the server never imports a lesson: a
short-lived subprocess (:mod:`lessons.kit.describe`) does, in its own process group, and answers one
JSON line (docstring, parser options, ``SIGNALS``, ``REQUIRES``). No answer within
``METADATA_TIMEOUT``, a crash, an exit, a fork or a process started at import lists the file as
unavailable with the reason, and the whole group is killed. Describing a folder has one overall
deadline (``DESCRIBE_DEADLINE``): a file still being described then is listed as unavailable for
this request only (``Lesson.pending``) while its probe finishes in the background, and a later
request shows the probe's answer, so the index answers within 2 s whatever a file does. Answers
(failures too) are cached by path, mtime and size (the lesson's and its exercise file's,
``exercises/<stem>.toml``) for the life of the process, so page loads and the many ``Registry``
objects of the tests cost a ``stat`` or two per file.

A file with no ``build_parser`` is a *plain program* (``Lesson.plain``): the describer reads it from
its syntax tree without running it, and a run passes it free-form arguments through
``python -m lessons.kit.run``. :func:`load_program` reads one such file from anywhere (``threadlab
watch prog.py``), through the same probe and cache, under the id ``program:<file name>``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import defaults, exercise_spec, exercises
from .lesson import Lesson, parse_docstring, read_param
from .probe import Unreadable, probe

ROOT = Path(__file__).resolve().parent.parent
LESSON_GLOB = "[0-9][0-9]_*.py"
# Probes mostly wait (startup, a hung file): more than the 2 cores is fine. Enough for a whole
# folder at once, so no probe's own timeout starts late, queued behind others.
PROBE_WORKERS = 16
# Seconds one listing waits for its probes in all: a little over METADATA_TIMEOUT, so a file that
# hangs is reported by its own probe when it can be, and the index (render included) within 2 s.
DESCRIBE_DEADLINE = defaults.METADATA_TIMEOUT + 0.25
PROGRAM_PREFIX = "program:"  # the lesson id of a run of a program given by path (threadlab watch)


def _read_exercises(lesson: Lesson, raw: Any) -> None:
    if isinstance(raw, dict) and "error" in raw:
        lesson.exercises_error = str(raw["error"])
        return
    try:
        lesson.exercises, lesson.prediction = exercise_spec.parse(raw, lesson.sections.get("Exercises", ""))
        lesson.levels = exercise_spec.parse_levels(raw)
    except exercises.SpecError as exc:
        lesson.exercises_error = f"exercises/{lesson.id}.toml: {exc}"


def load_lesson(path: Path, timeout: float | None = None) -> Lesson:
    """Read one lesson file through the describer subprocess (uncached; see :func:`load_lessons`)."""
    path = Path(path)
    lesson = Lesson(id=path.stem, number=path.name[:2], path=path)
    try:
        answer = probe(path, defaults.METADATA_TIMEOUT if timeout is None else timeout)
        lesson.title, lesson.sections = parse_docstring(str(answer.get("doc") or ""))
        lesson.signals = tuple(str(s) for s in answer.get("signals") or ())
        lesson.requires = tuple(str(r) for r in answer.get("requires") or ())
        lesson.params = [read_param(p) for p in answer.get("params") or ()]
        _read_exercises(lesson, answer.get("exercises"))
        lesson.plain = answer.get("plain") is True
    except Unreadable as exc:
        lesson.error = str(exc)
    except Exception as exc:  # a malformed answer or no process to start: listed, never fatal
        lesson.error = f"could not be read: {type(exc).__name__}: {exc}"
    lesson.title = lesson.title or path.stem
    return lesson


# One entry per lesson path: the (mtime_ns, size) it was read at, and the probe's Future. Guarded by
# _cache_lock. The Future goes in before the probe runs, so a second caller asking for the same file
# meanwhile waits for that probe instead of starting its own.
_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple, Future[Lesson]]] = {}


def _unreadable(path: Path, reason: str, pending: bool = False) -> Lesson:
    return Lesson(id=path.stem, number=path.name[:2], path=path, title=path.stem, error=reason,
                  pending=pending)


# Lives as long as the process: a probe past a listing's deadline goes on here after the request
# has answered (a `with` block would wait for it). Each probe ends within METADATA_TIMEOUT.
_pool = ThreadPoolExecutor(PROBE_WORKERS, "threadlab-registry")


def file_stamp(path: Path) -> tuple | None:
    """What says a lesson changed: its file's and its exercise file's mtime and size (None: gone)."""
    try:
        info = path.stat()
    except OSError:
        return None
    try:
        extra = (path.parent / "exercises" / f"{path.stem}.toml").stat()
        checks: tuple = (extra.st_mtime_ns, extra.st_size)
    except OSError:
        checks = ()
    return (info.st_mtime_ns, info.st_size, checks)


def _fulfil(path: Path, future: Future[Lesson]) -> None:
    try:
        future.set_result(load_lesson(path))
    except BaseException as exc:  # whoever waits on this future must never wait for ever
        future.set_result(_unreadable(path, f"could not be read: {type(exc).__name__}"))


def load_lessons(paths: list[Path], wait: float = DESCRIBE_DEADLINE) -> list[Lesson]:
    """The lessons of ``paths`` (in order; files gone meanwhile are left out), probing changed
    files side by side and the rest from the cache. A file whose probe has not answered within
    ``wait`` seconds in all is a ``pending`` placeholder; its probe goes on, and a later call gets
    its answer from the cache."""
    deadline = time.monotonic() + wait
    todo: list[tuple[Path, Future[Lesson]]] = []
    futures: list[tuple[Path, Future[Lesson]]] = []
    with _cache_lock:
        for path in paths:
            stamp = file_stamp(path)
            if stamp is None:
                continue
            entry = _cache.get(path.absolute())
            if entry is None or entry[0] != stamp:
                entry = (stamp, Future())
                _cache[path.absolute()] = entry
                todo.append((path, entry[1]))
            futures.append((path, entry[1]))
    submitted = 0
    try:
        for path, future in todo:
            _pool.submit(_fulfil, path, future)
            submitted += 1
    except BaseException:  # no thread to probe with (the interpreter is shutting down)
        with _cache_lock:
            # Only the futures never handed to the pool: _fulfil alone answers the others.
            for path, future in todo[submitted:]:
                future.set_result(_unreadable(path, "could not be read: no thread to probe it"))
                _cache.pop(path.absolute(), None)  # answer those waiting, and do not remember it
        raise
    done, _ = wait_futures([future for _, future in futures], max(0.0, deadline - time.monotonic()))
    return [future.result() if future in done else
            _unreadable(path, f"did not finish describing itself in {wait:g} s", pending=True)
            for path, future in futures]


def load_program(path: Path) -> Lesson:
    """A program given by absolute path, outside any lessons folder, described like a lesson (the
    same probe, the same cache) under the id ``program:<file name>``, so the index and the run
    pages never mistake it for a lesson of the folder."""
    path = Path(path)
    lessons = load_lessons([path])
    lesson = lessons[0] if lessons else _unreadable(path, "the file is gone")
    # A copy: the cached Lesson is shared with any Registry whose folder holds the same file.
    return replace(lesson, id=PROGRAM_PREFIX + path.name, number="")


class Registry:
    """All lessons of one folder, re-read when a file in it changes (a teacher adds one live)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        # Invariant: _lessons is what the files listed in _stamp held, and the two change together,
        # under _lock; request threads call all()/get() at once, and a check-then-act on them
        # without the lock could pair an old listing with a new stamp (and never re-read). A
        # listing with a pending lesson is never stored: the next call asks the cache again.
        # The lock is not held while probes run: a request must not queue behind another's wait
        # (the probe cache already shares one probe per file between them).
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._lessons: list[Lesson] = []

    def all(self) -> list[Lesson]:
        paths = sorted(self.folder.glob(LESSON_GLOB))
        stamp = []
        for path in paths:
            found = file_stamp(path)
            if found is None:  # removed since the glob; the next call lists the folder again
                continue
            stamp.append((path.name, found))
        with self._lock:
            if tuple(stamp) == self._stamp:
                return list(self._lessons)
        lessons = load_lessons(paths)
        if not any(lesson.pending for lesson in lessons):
            with self._lock:  # both together: this listing is what those stamps held
                self._lessons, self._stamp = lessons, tuple(stamp)
        return list(lessons)

    def get(self, key: str) -> Lesson | None:
        """A lesson by its full name (``03_producer_consumer``) or two-digit number (``03``); when
        two files share a number, the number means the first of them in sorted order."""
        lessons = self.all()
        return (next((lesson for lesson in lessons if lesson.id == key), None)
                or next((lesson for lesson in lessons if lesson.number == key), None))

"""The thread sampler: a ``threadlab-sampler`` thread that looks at every lesson thread
every ``THREADLAB_SAMPLE_INTERVAL`` seconds (default 0.1).

In JSON mode it writes ``threads`` snapshots (when something changed, and at least once a second);
in both modes it watches the traced locks' wait-for graph and reports a cycle that lasts longer than
``DEADLOCK_AFTER`` seconds as a ``deadlock`` event (and a log line a person can read).
Threads named ``threadlab-…`` are the kit's own and are left out of everything.

A thread can start and finish between two samples (lesson 01's short workers on a busy machine).
So that it still shows in the table, every new thread announces itself once:
``threading.setprofile`` installs a hook that each thread started afterwards calls on its first
Python call; the hook notes the thread and removes itself, so the thread runs unprofiled from then
on (one call's cost, not one per call).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from . import events, frames, traced

DEADLOCK_AFTER = 0.3  # seconds a cycle must last: long enough to skip a passing overlap
HEARTBEAT = 1.0  # write a snapshot at least this often, so CPU seconds keep moving
MAX_FINISHED = 100  # finished threads kept in snapshots; a lesson that starts thousands stays small

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_log = logging.getLogger("threadlab.kit")


def is_kit_thread(thread: threading.Thread) -> bool:
    return thread.name.startswith("threadlab-")


def cpu_seconds(native_id: int | None) -> float | None:
    """User + system CPU time of one thread, from ``/proc/self/task`` (Linux only)."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # After "pid (comm)": state is field 3, utime 14 and stime 15 of the whole line.
    return round((int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, 3)


class Sampler:
    """Snapshots of lesson threads; up to ``MAX_FINISHED`` finished ones stay (greyed)."""

    def __init__(self, interval: float, snapshots: bool) -> None:
        # Set here and only read afterwards: shared by every thread without a lock.
        self.interval = interval
        self.snapshots = snapshots
        self.main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        # write_snapshot() runs in threadlab-sampler and in the lesson's thread at once
        # (emit_result, stop(), atexit). _lock guards _rows, _last_written and _last_time, and the
        # draining of _born. Invariant: one thread at a time builds a snapshot and writes it, so
        # _rows is never changed while another thread iterates it, _last_written is the table
        # last written, and snapshots reach the stream in the order they were taken. Held while
        # writing the event (the event writer's lock is a leaf: its holder takes nothing else),
        # never while waiting for anything else. Not reentrant: a Python signal handler must not
        # call emit_result (the kit's own handler only writes a byte to a pipe).
        self._lock = threading.Lock()
        self._rows: dict[threading.Thread, dict[str, Any]] = {}
        self._last_written: list[dict[str, Any]] | None = None
        self._last_time = 0.0
        # Appended by each new thread (one list.append: atomic, no lock, see _note_new_thread);
        # drained only under _lock, by copying then deleting that many from the front, so an
        # append landing in between stays for the next sample.
        self._born: list[threading.Thread] = []
        # Owned by threadlab-sampler (check_deadlock runs only there): no lock.
        self._cycle_since: float | None = None
        self._cycle_reported = False
        # Set by stop(); the sampler thread waits on it between samples.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadlab-sampler", daemon=True)

    def start(self) -> None:
        if self.snapshots:
            threading.setprofile(self._note_new_thread)
        self._thread.start()

    def _note_new_thread(self, frame, event: str, arg: Any) -> None:
        """Runs once in each new thread (see the module docstring), then turns itself off."""
        sys.setprofile(None)
        # No lock: a profile hook runs inside whatever the new thread calls first, and one append
        # is atomic (a single operation under the GIL, a per-list lock on free-threaded builds).
        self._born.append(threading.current_thread())

    def stop(self) -> None:
        """Take a last snapshot (every thread's final state) and stop sampling."""
        # Remove our hook, not one the lesson installed since. threading offers no compare-and-
        # swap, so a lesson calling threading.setprofile between this check and the reset would
        # lose its hook; lessons set it (if ever) in their main thread before this runs at exit.
        if threading.getprofile() == self._note_new_thread:
            threading.setprofile(None)
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
        if self.snapshots:
            self.write_snapshot(force=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.snapshots:
                    self.write_snapshot()
                self.check_deadlock()
            except Exception:  # the sampler must never take a lesson down
                _log.exception("thread sampler failed; sampling continues")
            self._stop.wait(self.interval)

    def rows(self) -> list[dict[str, Any]]:
        """Every lesson thread's row now (updating the table ``write_snapshot`` writes)."""
        with self._lock:
            return self._rows_locked()

    def _rows_locked(self) -> list[dict[str, Any]]:
        # Caller holds _lock. Frames come from frames.current_frames(), the kit's one reader of
        # other threads' stacks: {} on a free-threaded build, where rows fall back to the traced
        # primitives' state and have no "where" (the snapshot says so in "limited").
        current = frames.current_frames()
        # Drain the newborn before listing the living:
        # a newborn missing from that list has finished.
        born = self._born[:]
        del self._born[: len(born)]  # one appending meanwhile is kept for the next sample
        alive = [t for t in threading.enumerate() if not is_kit_thread(t)]
        for thread in born:
            if thread not in alive and thread not in self._rows and not is_kit_thread(thread):
                self._rows[thread] = self._row(thread, None)  # came and went between two samples
        for thread in alive:
            self._rows[thread] = self._row(thread, current.get(thread.ident))
        for thread, row in self._rows.items():
            if thread not in alive and row["alive"]:
                row.update(alive=False, state="done", holds=[], waiting_for=None)
        finished = [t for t, row in self._rows.items() if not row["alive"]]
        for thread in finished[:-MAX_FINISHED]:
            del self._rows[thread]
        # Copies: a later sample updates these rows in place, and the caller reads them unlocked.
        return [dict(row) for row in self._rows.values()]

    def _row(self, thread: threading.Thread, frame) -> dict[str, Any]:
        alive = thread.is_alive()  # False too for the main thread at exit (atexit runs after)
        state, detail = frames.classify(frame) if alive else ("done", "")
        # Traced locks know threads by ident, and CPython gives a finished thread's ident to the
        # next new thread: asked about a finished one, they would answer for a stranger.
        blocked = traced.waiting(thread.ident) if alive else None
        waiting_for = None
        if blocked:
            waiting_for, state = blocked[0], blocked[1]
        elif state != "running":
            waiting_for = detail or None
        return {
            "name": thread.name,
            "ident": thread.ident,
            "native_id": thread.native_id,
            "daemon": thread.daemon,
            "alive": alive,
            "state": state,
            **frames.where(frames.lesson_frame(frame, self.main_file)),
            "holds": traced.holds(thread.ident) if alive else [],
            "waiting_for": waiting_for,
            "cpu_s": cpu_seconds(thread.native_id),
        }

    def write_snapshot(self, force: bool = False) -> None:
        """Write a ``threads`` event if anything changed (or ``force``); any thread may call it.

        Reading the table, comparing it with the last one written and writing it is one step
        under ``_lock`` (see ``__init__``): two threads checking "changed?" and then both writing,
        or one iterating ``_rows`` while the other adds a row, was a real crash.
        """
        with self._lock:
            rows = self._rows_locked()
            # CPU seconds change all the time; write for them only once a second.
            comparable = [{k: v for k, v in row.items() if k != "cpu_s"} for row in rows]
            now = time.monotonic()
            if force or comparable != self._last_written or now - self._last_time >= HEARTBEAT:
                limited = frames.limitation()
                events.emit("threads", threads=rows, **({"limited": limited} if limited else {}))
                self._last_written, self._last_time = comparable, now

    def check_deadlock(self) -> None:
        cycle = traced.find_cycle()
        if cycle is None:
            self._cycle_since, self._cycle_reported = None, False
            return
        now = time.monotonic()
        if self._cycle_since is None:
            self._cycle_since = now
        if not self._cycle_reported and now - self._cycle_since >= DEADLOCK_AFTER:
            self._cycle_reported = True
            events.emit("deadlock", cycle=cycle)
            story = "; ".join(
                f"{c['thread']} holds {', '.join(c['holds']) or 'nothing'} "
                f"and waits for {c['waits_for']}"
                for c in cycle
            )
            _log.error("DEADLOCK detected: %s", story)

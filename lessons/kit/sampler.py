"""The thread sampler: a ``threadlab-sampler`` thread that looks at every lesson thread
every ``THREADLAB_SAMPLE_INTERVAL`` seconds (default 0.1).

In JSON mode it writes ``threads`` snapshots (when something changed, and at least once a second);
in both modes it watches the traced locks' wait-for graph and reports a cycle that lasts longer than
``DEADLOCK_AFTER`` seconds as a ``deadlock`` event (and a log line a person can read).
Threads named ``threadlab-…`` are the kit's own and are left out of everything.

A thread can start and finish between two samples (lesson 01's short workers on a busy machine).
So that it still shows in the table, every new thread is announced to the running sampler, which
gives it a row at its next sample. With the thread hooks below (JSON mode), each lesson thread
announces itself as it ends, after its ``end``/``crash`` event: this needs no profile hook, so a
lesson that installs its own ``threading.setprofile`` (14 does, replacing any other) still has
every worker in the table. A sampler running without those hooks (tests of the sampler alone)
falls back on a ``threading.setprofile`` hook that each thread started afterwards calls on its
first Python call; it notes the thread and removes itself (one call's cost, not one per call).

Snapshots are samples; a thread's life is also told as it happens. In JSON mode ``kit.setup``
calls :func:`install_thread_hooks`, which wraps ``Thread._bootstrap_inner`` (the method every
thread runs, whatever its subclass does with ``run``): each lesson thread writes a ``thread``
event ``start`` before its target runs and ``end`` or ``crash`` after it, from the thread itself,
so no thread is missed and the times are true. A crash is noticed through the thread's own
``_invoke_excepthook`` (an instance attribute threading makes per thread), not by replacing
``threading.excepthook``: a lesson that installs its own hook (14 does) still gets every crash,
and whatever hook is in place still runs, so the traceback still reaches stderr.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, NamedTuple

from . import events, frames, traced

DEADLOCK_AFTER = 0.3  # seconds a cycle must last: long enough to skip a passing overlap
HEARTBEAT = 1.0  # write a snapshot at least this often, so CPU seconds keep moving
MAX_FINISHED = 100  # finished threads kept in snapshots; a lesson that starts thousands stays small

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# True while step mode holds threads: the stepper reports deadlocks itself, exactly and at once
# (see step.py), so the watch here stands aside until ``free``. One writer (the stepper), read
# once per check.
stepping = False
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


# --- Thread life ------------------------------------------------------------------------------

# Installed and removed only by kit.setup(), always under kit._sampler_lock: one writer at a time.
# The original is kept on the wrapper, so installing again wraps the original, never a wrapper.
_WRAPS = "__threadlab_wraps__"
# The running sampler's list of newborn threads (Sampler._born), or None: set by Sampler.start and
# cleared by Sampler.stop, which kit.setup calls under kit._sampler_lock (one writer); read by each
# ending lesson thread as one load of a module global, and appended to atomically (see _born).
_born_sink: list[threading.Thread] | None = None
# Set on a crashed Thread object by that thread alone, once, inside threading's excepthook call,
# which comes before the thread leaves threading's table: whoever sees it finished sees this too.
CRASH_ATTR = "_threadlab_crash"


class LifeEnd(NamedTuple):
    """How a lesson thread ended (see :data:`_recent_ends`)."""

    at: float  # time.monotonic()
    ident: int
    thread: str
    op: str  # "end" or "crash"
    exc: dict[str, str] | None  # crash: {"type", "message"}


# The last lesson threads to end, oldest first: appended by each ending thread itself (one atomic
# append), read only as a whole copy. For the deadlock watch: "it crashed" or "it ended" tells how
# a cycle broke even when the thread is long gone by the next sample.
_recent_ends: collections.deque[LifeEnd] = collections.deque(maxlen=1024)


def recent_ends() -> list[LifeEnd]:
    return list(_recent_ends.copy())


def crash_of(thread: threading.Thread) -> dict[str, Any] | None:
    """``{"type", "message", "where"}`` if ``thread`` ended with an uncaught exception."""
    return getattr(thread, CRASH_ATTR, None)


def install_thread_hooks() -> None:
    """``thread`` events for every lesson thread started from now on, and traced joins."""
    original = getattr(
        threading.Thread._bootstrap_inner, _WRAPS, threading.Thread._bootstrap_inner
    )

    def _bootstrap_inner(self: threading.Thread) -> None:
        if is_kit_thread(self):
            return original(self)
        invoke = getattr(self, "_invoke_excepthook", None)
        if invoke is not None:  # CPython 3.8+; elsewhere crashes are reported as ends

            def record_then_invoke(thread: threading.Thread) -> None:
                _record_crash(thread)
                invoke(thread)  # threading.excepthook as it is now: the traceback still prints

            self._invoke_excepthook = record_then_invoke  # type: ignore[attr-defined]
        # ident and native_id are not on self yet (the original sets them): ask the OS thread.
        _life("start", self, threading.get_ident(), threading.get_native_id())
        try:
            original(self)
        finally:
            # The original has taken us out of threading's table: from here on, nothing may call
            # threading.current_thread() (it would invent a "Dummy" thread). self says who we are.
            # A lesson's profile or trace function would (lesson 14's counts calls per thread
            # name), and our calls below are no part of the lesson anyway: switch them off for
            # this thread, which is about to end.
            sys.setprofile(None)
            sys.settrace(None)
            crash = crash_of(self)
            op = "crash" if crash is not None else "end"
            exc = {"type": crash["type"], "message": crash["message"]} if crash else None
            _recent_ends.append(LifeEnd(time.monotonic(), self.ident or 0, self.name, op, exc))
            if crash is not None:
                _life(op, self, self.ident, self.native_id, exc=exc, where=crash["where"])
            else:
                _life(op, self, self.ident, self.native_id)
            # After its end event, so a snapshot showing it finished never precedes that event.
            # At the end, not the start: not yet in threading's table, a thread announced before
            # it ran would be sampled as already done.
            sink = _born_sink
            if sink is not None:
                sink.append(self)

    setattr(_bootstrap_inner, _WRAPS, original)
    threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[attr-defined]
    traced.install_join()


def uninstall_thread_hooks() -> None:
    """Back to threading's own methods (text mode: nothing is written, so nothing is wrapped)."""
    current = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]
    threading.Thread._bootstrap_inner = getattr(current, _WRAPS, current)  # type: ignore
    traced.uninstall_join()


def _record_crash(thread: threading.Thread) -> None:
    """Runs in the crashing thread, inside threading's except clause: sys.exc_info() is its own."""
    exc = sys.exc_info()[1]
    if exc is None or isinstance(exc, SystemExit):
        return  # SystemExit ends a thread quietly (threading.excepthook ignores it too)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    place = frames.traceback_where(exc.__traceback__, main_file)
    # Type, message and place only: keeping the exception would keep its frames alive.
    setattr(
        thread,
        CRASH_ATTR,
        {"type": type(exc).__name__, "message": str(exc), **place},
    )


def _life(op: str, thread: threading.Thread, ident: int | None, native_id: int | None,
          **extra: Any) -> None:
    if not events.enabled():
        return
    # Telling the dashboard must never take the lesson's thread down.
    with contextlib.suppress(Exception):
        events.emit("thread", op=op, name=thread.name, ident=ident, native_id=native_id,
                    daemon=thread.daemon, **extra)


def _finished(thread: threading.Thread) -> dict[str, Any]:
    """The row fields of a thread that is no longer alive: ``done``, or ``crashed`` with ``exc``."""
    fields: dict[str, Any] = {"alive": False, "state": "done", "holds": [], "waiting_for": None}
    crash = crash_of(thread)
    if crash is not None:
        fields.update(
            state="crashed",
            exc={"type": crash["type"], "message": crash["message"]},
            where=crash["where"],
            line=crash["line"],
            func=crash["func"],
        )
    return fields


def explain_break(cycle: list[dict[str, Any]], idents: list[int], since: float) -> str:
    """How a deadlock cycle (formed at monotonic ``since``) broke, from what changed since then.

    In order of what is the cause rather than a consequence: a thread of the cycle gave up its wait
    (the first to do so: the others may then have got their lock), crashed, ended; else a lock it
    held was released from outside (a plain lock may be released by any thread).
    """
    members = {ident: entry for ident, entry in zip(idents, cycle, strict=True)}
    for wait in traced.recent_waits():
        entry = members.get(wait.ident)
        if (wait.at >= since and entry is not None and wait.obj == entry["waits_for"]
                and wait.outcome != "acquired"):
            verb = "gave up waiting" if wait.outcome == "timeout" else "stopped waiting"
            return f"{entry['thread']} {verb} for {wait.obj} ({wait.outcome})"
    for end in recent_ends():
        if end.at >= since and end.ident in members:
            if end.exc is not None:
                return f"{end.thread} crashed ({end.exc['type']}: {end.exc['message']})"
            return f"{end.thread} ended"
    alive = {t.ident for t in threading.enumerate()}
    for ident, entry in members.items():
        if ident not in alive:
            return f"{entry['thread']} ended"
        for name in entry["holds"]:
            if traced.owner_of(name) != ident:
                return f"{name}, held by {entry['thread']}, was released"
    return "the wait-for cycle is gone"


class Sampler:
    """Snapshots of lesson threads; up to ``MAX_FINISHED`` finished ones stay (greyed)."""

    def __init__(self, interval: float, snapshots: bool, main_file: str | None = None) -> None:
        # Set here and only read afterwards: shared by every thread without a lock.
        self.interval = interval
        self.snapshots = snapshots
        # The file "where" points into: the lesson, or the program ``kit.run`` is about to run
        # (not yet __main__ when the sampler is made).
        self.main_file = main_file or getattr(sys.modules.get("__main__"), "__file__", None)
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
        # Appended by each ending lesson thread (install_thread_hooks) or each new one
        # (_note_new_thread): one list.append, atomic, no lock;
        # drained only under _lock, by copying then deleting that many from the front, so an
        # append landing in between stays for the next sample.
        self._born: list[threading.Thread] = []
        # Owned by threadlab-sampler (check_deadlock runs only there): no lock. _cycle is the cycle
        # being watched (None: none); _cycle_reported says whether its "formed" event went out,
        # so that exactly the reported cycles get a "broken" one.
        self._cycle: traced.Cycle | None = None
        self._cycle_since = 0.0  # epoch seconds when _cycle formed: "since" in both its events
        self._cycle_reported = False
        # Set by stop(); the sampler thread waits on it between samples.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadlab-sampler", daemon=True)

    def start(self) -> None:
        global _born_sink
        if self.snapshots:
            _born_sink = self._born
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
        global _born_sink
        if threading.getprofile() == self._note_new_thread:
            threading.setprofile(None)
        if _born_sink is self._born:
            _born_sink = None
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
        # One last look, here (check_deadlock's state is this thread's alone): a deadlock that
        # broke just before the lesson ended (lesson 09's last transfer gives up, then main exits)
        # must still be reported broken, or the banner would stay up on a finished run.
        try:
            self.check_deadlock()
        except Exception:
            _log.exception("thread sampler failed in its last deadlock check")

    def rows(self) -> list[dict[str, Any]]:
        """Every lesson thread's row now (updating the table ``write_snapshot`` writes)."""
        with self._lock:
            return self._rows_locked()

    def _rows_locked(self) -> list[dict[str, Any]]:
        # Caller holds _lock. Frames come from frames.current_frames(), the kit's one reader of
        # other threads' stacks: {} on a free-threaded build, where rows fall back to the traced
        # primitives' state and have no "where" (the snapshot says so in "limited").
        current = frames.current_frames()
        # Drain the newborn (and the announced ended) before listing the living:
        # one of them missing from that list has finished.
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
                row.update(_finished(thread))
        finished = [t for t, row in self._rows.items() if not row["alive"]]
        for thread in finished[:-MAX_FINISHED]:
            del self._rows[thread]
        # Copies: a later sample updates these rows in place, and the caller reads them unlocked.
        return [dict(row) for row in self._rows.values()]

    def _row(self, thread: threading.Thread, frame) -> dict[str, Any]:
        alive = _is_alive(thread)  # False too for the main thread at exit (atexit runs after)
        state, detail = frames.classify(frame) if alive else ("done", "")
        # Traced locks know threads by ident, and CPython gives a finished thread's ident to the
        # next new thread: asked about a finished one, they would answer for a stranger.
        blocked = traced.waiting(thread.ident) if alive else None
        waiting_for = None
        if blocked:
            waiting_for, state = blocked[0], blocked[1]
        elif state != "running":
            waiting_for = detail or None
        row = {
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
        if not alive:
            row.update(_finished(thread))
        return row

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
        """Report a cycle that lasts (``formed``), and the end of every reported one (``broken``).

        A cycle is the same while the same threads wait for the same locks; when it changes, the
        old one is over (broken, if it was reported) and the new one is watched from its own start.
        """
        if stepping:
            return
        found = traced.find_cycle_detail()
        watched = self._cycle
        if watched is not None and (found is None or _key(found) != _key(watched)):
            if self._cycle_reported:
                self._report_broken(watched)
            self._cycle, self._cycle_reported = None, False
        if found is None:
            return
        if self._cycle is None:
            self._cycle, self._cycle_since = found, _epoch(found.since)
        watched = self._cycle
        # Timed from when the cycle formed (its last wait began), not from when a sample saw it.
        if not self._cycle_reported and time.monotonic() - watched.since >= DEADLOCK_AFTER:
            self._cycle_reported = True
            events.emit("deadlock", op="formed", since=self._cycle_since, cycle=watched.cycle)
            _log.error("DEADLOCK detected: %s", cycle_story(watched.cycle))

    def _report_broken(self, cycle: traced.Cycle) -> None:
        how = explain_break(cycle.cycle, cycle.idents, cycle.since)
        events.emit("deadlock", op="broken", since=self._cycle_since, cycle=cycle.cycle, how=how)
        _log.info("deadlock over after %.1f s: %s", time.monotonic() - cycle.since, how)


def cycle_story(cycle: list[dict[str, Any]]) -> str:
    """A deadlock's ``cycle`` as a sentence a person can read."""
    return "; ".join(
        f"{c['thread']} holds {', '.join(c['holds']) or 'nothing'} and waits for {c['waits_for']}"
        for c in cycle
    )


def _key(cycle: traced.Cycle) -> tuple[frozenset[tuple[int, str]], float]:
    # With when it formed: a later cycle of reused idents and same-named locks (lesson 09 makes
    # new "account-A"s each round) is another cycle, even if no sample fell between the two.
    pairs = zip(cycle.idents, cycle.cycle, strict=True)
    return frozenset((ident, entry["waits_for"]) for ident, entry in pairs), cycle.since


def _epoch(monotonic: float) -> float:
    """A ``time.monotonic()`` instant as epoch seconds, the clock of every event's ``t``."""
    return time.time() - (time.monotonic() - monotonic)


def _is_alive(thread: threading.Thread) -> bool:
    """Whether ``thread`` still runs. A thread Python started knows. One Python only met (a Qt
    QThread, a C library's thread: ``threading._DummyThread``) stays "alive" for ever as far as
    ``threading`` knows, so a finished Qt worker showed ``running``. On Linux its task directory
    says whether it still exists. (The kernel may give a finished thread's id to a later thread of
    ours, which would make the old one look alive again: rare with a lesson's few threads.)"""
    if isinstance(thread, threading._DummyThread) and thread.native_id is not None \
            and os.path.isdir("/proc/self/task"):
        return os.path.exists(f"/proc/self/task/{thread.native_id}")
    return thread.is_alive()

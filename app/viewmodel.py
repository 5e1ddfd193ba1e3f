"""A run folded into what its pages show: thread lanes over time, deadlocks, log instants, and why it ended.

A :class:`ViewModel` reads its run's :class:`~app.eventlog.EventLog` with a cursor, like a viewer: each
request folds only the events that arrived since the last one, so a 230k-event run is parsed once, not
on every 2-second timeline poll. What it keeps is compact (``array`` columns, interned strings, a
sample only when something changed), never the events themselves.

A lane is one thread's life, keyed by ident *and* start: CPython gives a finished thread's ident to
the next one and lessons reuse names, so "Handler-1" started twice gets two lanes, the second shown as
"Handler-1 ·2". Snapshot rows are matched to lanes by ident and ``native_id`` (the OS thread id, which
is not reused while two threads could be confused).

States come from two sources. ``thread``/``state`` events are true transitions and win; a snapshot's
state is used for what no traced primitive reports (sleeping, waiting-io, an untraced wait), and for
older runs that have no ``state`` events at all.

Times: the model stores epoch seconds; everything it returns is run seconds, from the run's first event.
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from typing import Any

from .lanes import Lane, as_names, as_text, segments
from .output import safe_parse

BATCH = 10_000  # events read from the log at a time
MAX_MARKS = 20_000  # ticks (sync, log, signal) kept for drawing; the file has the rest
MAX_EPOCH = 1e11  # seconds; a larger `t` is a lesson's mistake and would void the axis
TRACED_WAITS = frozenset({"waiting-lock", "waiting-condition", "waiting-event", "waiting-queue",
                          "waiting-join"})
LOG_KINDS = ("log", "stdout", "stderr", "signal")
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")  # "RuntimeError: boom", the end of a traceback


class ViewModel:
    def __init__(self, run: Any = None) -> None:
        self.run = run
        # _lock guards every field below: request threads share a model; one folds while others wait
        # (they would need the same events anyway). Held across the log read, never across anything
        # that waits on another lock but the EventLog's own, which is never held while calling us.
        self._lock = threading.RLock()
        self._cursor = -1  # seq of the last event folded
        self._complete = False  # the log was closed and everything in it folded: nothing more to read
        self.first_t: float | None = None
        self.last_t = 0.0
        self._lanes: list[Lane] = []
        self._by_ident: dict[Any, list[Lane]] = {}
        self._by_name: dict[str, list[Lane]] = {}
        self._deadlocks: list[dict[str, Any]] = []  # formed, broken, how, cycle, since (epoch)
        self._log_t, self._log_seq = array("d"), array("q")
        self._times, self._sorted_times = array("d"), None
        self._marks = 0
        self.status: str | None = None
        self.exit_code: int | None = None
        self.results: dict[str, Any] = {}
        self.exception: str | None = None  # the last line of the last stderr traceback
        self._in_traceback = False

    # -- folding --------------------------------------------------------------------------------

    def refresh(self) -> ViewModel:
        """Fold whatever the run's log has gained since last time."""
        with self._lock:
            if self._complete or self.run is None:
                return self
            log = self.run.log
            closed = log.closed  # read first: if closed now, the reads below see every event
            while batch := log.read(self._cursor, BATCH):
                for raw, event in batch:
                    self._cursor += 1
                    event = event if event is not None else safe_parse(raw)
                    if event is not None:
                        self.fold(event)
            self._complete = closed
        return self

    @property
    def count(self) -> int:
        with self._lock:
            return self._cursor + 1

    @property
    def complete(self) -> bool:
        with self._lock:
            return self._complete

    def fold(self, event: dict[str, Any]) -> None:
        """Fold one parsed event (odd fields are skipped, never raise)."""
        t = event.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not abs(t) < MAX_EPOCH:
            return  # also NaN and infinity
        with self._lock:
            if self.first_t is None:
                self.first_t = float(t)
            t = max(float(t), self.first_t)
            self.last_t = max(self.last_t, t)
            kind = event.get("kind")
            seq = event.get("seq")
            handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
            if kind in LOG_KINDS:
                self._log_t.append(t)
                self._log_seq.append(seq if isinstance(seq, int) else self._cursor)
            if (handler is None or handler(t, event) is not False) and kind != "threads":
                self._times.append(t)
                self._sorted_times = None

    def _lanes_for(self, ident: Any, name: str | None) -> list[Lane]:
        return self._by_ident.get(ident, []) if ident is not None else self._by_name.get(name or "", [])

    def _open_lane(self, ident: Any, name: str | None) -> Lane | None:
        for lane in reversed(self._lanes_for(ident, name)):
            if lane.end is None and lane.claimed:
                return lane
        return None

    def _new_lane(self, name: str, ident: Any, t: float) -> Lane:
        for lane in self._by_name.get(name, []):
            if not lane.claimed:  # marks came first: this thread takes over their lane
                lane.claimed, lane.ident, lane.start = True, ident, min(lane.start, t)
                self._by_ident.setdefault(ident, []).append(lane)
                return lane
        same = sum(1 for lane in self._by_name.get(name, []) if lane.claimed)
        lane = Lane(name, ident, t)
        lane.display = f"{name} ·{same + 1}" if same else name
        self._lanes.append(lane)
        self._by_ident.setdefault(ident, []).append(lane)
        self._by_name.setdefault(name, []).append(lane)
        return lane

    def _end(self, lane: Lane, t: float, crash: dict[str, Any] | None = None) -> None:
        if lane.end is None:
            lane.end = max(t, lane.start)
        if crash and not lane.crash:
            lane.crash = crash
        lane.change(lane.end, "crashed" if lane.crash else "done")

    def _on_thread(self, t: float, event: dict[str, Any]) -> None:
        op, ident, name = event.get("op"), event.get("ident"), as_text(event.get("name"))
        if name.startswith("threadlab-"):
            return
        lane = self._open_lane(ident, name)
        if op == "start":
            if lane is not None and not lane.by_event and lane.name == name:
                lane.start = min(lane.start, t)  # a snapshot saw it a moment before its start event
            else:
                if lane is not None:
                    self._end(lane, t)  # its end was never written: the ident is someone else's now
                lane = self._new_lane(name, ident, t)
                lane.change(t, "running")
            lane.by_event, lane.daemon = True, bool(event.get("daemon"))
            lane.native = event.get("native_id", lane.native)  # tells a reused ident's snapshot rows apart
        elif op in ("end", "crash"):
            lane = lane or self._new_lane(name, ident, t)  # born and gone before anyone saw it
            crash = None
            if op == "crash":
                exc = event.get("exc") if isinstance(event.get("exc"), dict) else {}
                crash = {"type": as_text(exc.get("type"), "Exception"),
                         "message": as_text(exc.get("message"), ""), "where": event.get("where"), "t": t}
            self._end(lane, t, crash)

    def _on_state(self, t: float, event: dict[str, Any]) -> bool:
        lane = self._open_lane(event.get("ident"), as_text(event.get("thread")))
        if lane is None:
            return False
        lane.traced = True
        obj = event.get("obj")
        return lane.change(t, as_text(event.get("state"), "running"), obj if isinstance(obj, str) else "")

    def _on_threads(self, t: float, event: dict[str, Any]) -> None:
        rows = event.get("threads")
        present: set[int] = set()
        changed = False
        for row in rows if isinstance(rows, list) else ():
            if not isinstance(row, dict):
                continue
            name, ident, native = as_text(row.get("name")), row.get("ident"), row.get("native_id")
            if name.startswith("threadlab-") or isinstance(ident, (dict, list)):
                continue
            lane = self._match(name, ident, native)
            alive = row.get("alive") is not False and row.get("state") not in ("done", "crashed")
            if lane is None or (lane.end is not None and alive):
                lane = self._new_lane(name, ident, t)
            elif lane.end is not None:
                continue  # a finished thread the sampler still lists: already ended
            present.add(id(lane))
            lane.seen, lane.native, lane.daemon = True, native, bool(row.get("daemon"))
            if lane.name != name:  # renamed while running (thread.name = ...)
                self._by_name.setdefault(name, []).append(lane)
                lane.name = lane.display = name
            info = (row.get("where"), row.get("line"), as_names(row.get("holds")), row.get("waiting_for"))
            if not isinstance(info[3], (str, type(None))):
                info = (*info[:3], as_names(info[3]))
            if not lane.si or lane.si[-1] != info:
                lane.st.append(t)
                lane.si.append(info)
            state = as_text(row.get("state"), "running")
            if not alive:
                exc = row.get("exc")
                crash = None
                if state == "crashed":
                    exc = exc if isinstance(exc, dict) else {"type": as_text(exc), "message": ""}
                    crash = {"type": as_text(exc.get("type"), "Exception"),
                             "message": as_text(exc.get("message"), ""), "where": row.get("where"), "t": t}
                self._end(lane, t, crash)
                changed = True
            elif not (lane.traced and (state in TRACED_WAITS or lane.state_at(t) in TRACED_WAITS)):
                # A traced thread's waits come from its state events, which are exact; a sample of
                # one is late by up to an interval and would draw a wait that already ended.
                changed = lane.change(t, state) or changed
        for lane in self._lanes:  # an alive thread gone from a full snapshot ended in between
            if lane.end is None and lane.seen and id(lane) not in present and lane.start < t:
                self._end(lane, t)
                changed = True
        if changed:
            self._times.append(t)
            self._sorted_times = None

    def _match(self, name: str, ident: Any, native: Any) -> Lane | None:
        for lane in reversed(self._lanes_for(ident, name)):
            if lane.native is not None and native is not None:
                if lane.native == native:
                    return lane
            elif lane.name == name:
                return lane
        return None

    def _on_deadlock(self, t: float, event: dict[str, Any]) -> None:
        since = event.get("since")
        since = since if isinstance(since, (int, float)) and not isinstance(since, bool) else None
        if since is not None and since < 1e8:  # seconds ago, not an instant
            since = t - since
        if event.get("op") == "broken":
            for dl in reversed(self._deadlocks):
                if dl["broken"] is None:
                    dl["broken"], dl["how"] = t, event.get("how")
                    break
            return
        cycle = [c for c in event.get("cycle", []) if isinstance(c, dict)] \
            if isinstance(event.get("cycle"), list) else []
        self._deadlocks.append({"formed": t, "broken": None, "how": None, "cycle": cycle,
                                "since": since if since is not None and math.isfinite(since) else t})
        for entry in cycle:
            title = f"deadlock: waits for {entry.get('waits_for')}"
            self._mark(t, as_text(entry.get("thread")), None, "deadlock", title, force=True)

    def _on_sync(self, t: float, event: dict[str, Any]) -> None:
        self._mark(t, as_text(event.get("thread")), None, "sync", f"{event.get('op')} {event.get('obj')}")

    def _on_log(self, t: float, event: dict[str, Any]) -> None:
        error = event.get("level") in ("ERROR", "CRITICAL") or event.get("exc")
        self._mark(t, as_text(event.get("thread")), event.get("thread_id"), "error" if error else "log",
                   as_text(event.get("msg"), ""), force=bool(error))

    def _on_signal(self, t: float, event: dict[str, Any]) -> None:
        self._mark(t, "MainThread", None, "signal", f"{event.get('signal')} sent", force=True)

    def _on_stderr(self, t: float, event: dict[str, Any]) -> None:
        text = as_text(event.get("text"), "")
        if text.startswith("Traceback (most recent call last)"):
            self._in_traceback = True
        elif self._in_traceback and (match := _EXC_LINE.match(text)):
            self.exception, self._in_traceback = text[:300], not match.group(2)

    def _on_status(self, t: float, event: dict[str, Any]) -> None:
        self.status = as_text(event.get("status"))
        if isinstance(event.get("exit_code"), int):
            self.exit_code = event["exit_code"]

    def _on_result(self, t: float, event: dict[str, Any]) -> None:
        if isinstance(event.get("values"), dict):
            self.results.update(event["values"])

    def _mark(self, t: float, name: str, ident: Any, kind: str, title: str, force: bool = False) -> None:
        if self._marks >= MAX_MARKS and not force:
            return
        if name.startswith("threadlab-"):
            return
        lanes = [lane for lane in self._lanes_for(ident, name) if lane.start <= t] or self._by_name.get(name)
        if not lanes:
            lane = Lane(name, None, t, claimed=False)
            self._lanes.append(lane)
            self._by_name.setdefault(name, []).append(lane)
            lanes = [lane]
        lanes[-1].marks.append((t, kind, title[:120]))
        self._marks += 1


    # -- questions --------------------------------------------------------------------------------

    def rel(self, t: float) -> float:
        return round(t - (self.first_t or 0.0), 6)

    @property
    def duration(self) -> float:
        with self._lock:
            return self.rel(self.last_t) if self.first_t is not None else 0.0

    def state_at(self, t: float) -> dict[str, Any]:
        """The run at ``t`` run seconds (clamped to its span): every thread alive or ended by then."""
        with self._lock:
            t = min(max(t, 0.0), self.duration)
            at = (self.first_t or 0.0) + t
            threads = []
            for lane in self._lanes:
                if not lane.claimed or lane.start > at:
                    continue  # not started yet at t: absent
                ended = lane.end is not None and lane.end <= at
                i = bisect_right(lane.st, at) - 1
                where, line, holds, waiting = lane.si[i] if i >= 0 else (None, None, (), None)
                crash = lane.crash if ended and lane.crash else None
                waiting = lane.waiting_for(at, waiting)
                waiting = list(waiting) if isinstance(waiting, tuple) else waiting
                threads.append({
                    "name": lane.name, "lane": lane.display, "ident": lane.ident,
                    "state": ("crashed" if crash else "done") if ended else lane.state_at(at),
                    "where": where, "line": line, "holds": [] if ended else list(holds),
                    "waiting_for": None if ended else waiting,
                    "daemon": lane.daemon,
                    "exc": {k: crash[k] for k in ("type", "message", "where")} if crash else None,
                })
            deadlock = None
            for dl in self._deadlocks:
                if dl["formed"] <= at and (dl["broken"] is None or dl["broken"] > at):
                    deadlock = {"cycle": dl["cycle"], "since": self.rel(dl["since"]),
                                "formed_at": self.rel(dl["formed"])}
                    if dl["broken"] is not None:
                        deadlock.update(broken_at=self.rel(dl["broken"]), how=dl["how"])
            i = bisect_right(self._log_t, at) - 1  # log times are in arrival order: near enough sorted
            return {"t": t, "duration": self.duration, "threads": threads, "deadlock": deadlock,
                    "log_seq": self._log_seq[i] if i >= 0 else None}

    def events_times(self) -> list[float]:
        """Sorted, distinct run-second instants where something happened: prev/next stepping."""
        with self._lock:
            if self._sorted_times is None:
                self._sorted_times = sorted({self.rel(t) for t in self._times})
            return self._sorted_times

    def step(self, t: float, direction: int) -> float | None:
        """The instant after (``direction`` > 0) or before ``t`` where something happened, or None."""
        times = self.events_times()
        i = bisect_right(times, t + 1e-9) if direction > 0 else bisect_left(times, t - 1e-9) - 1
        return times[i] if 0 <= i < len(times) else None

    def lanes_between(self, a: float, b: float, step: float = 0.0) -> list[dict[str, Any]]:
        """Each lane overlapping [a, b] (epoch seconds), for drawing: its segments ``(start, end,
        state, changes)`` clipped to the range, marks and crash. With ``step`` (seconds a pixel or
        two stand for), changes closer together than that are one segment of the state seen most in
        it, ``changes`` counting them: the work is bounded by pixels, not by the run's length."""
        with self._lock:
            out = []
            for lane in self._lanes:
                stop = min(lane.end if lane.end is not None else self.last_t, b)
                if lane.claimed and (lane.start > b or stop < a):
                    continue
                out.append({"name": lane.name, "display": lane.display, "ident": lane.ident,
                            "segments": segments(lane, a, stop, step) if lane.claimed else [],
                            "crash": lane.crash, "marks": [m for m in lane.marks if a <= m[0] <= b]})
            return out

    def summary(self) -> dict[str, Any]:
        """How the run went beyond its exit code: threads that crashed, and why it failed."""
        with self._lock:
            crashed = sum(1 for lane in self._lanes if lane.crash)
            why = None
            if self.status == "failed" or (self.exit_code not in (None, 0)):
                code = self.exit_code if self.exit_code is not None else "?"
                why = f"exit code {code}: {self.exception}" if self.exception \
                    else f"exit code {code} (no traceback)"
            failed = [k for k in ("passed", "ok", "success") if self.results.get(k) is False]
            # An exercise's verdict is not the run's: a try that misses its goal ran well (#check).
            if failed and why is None:
                why = "result says " + ", ".join(f"{name} is false" for name in failed)
            deadlocks = sum(1 for dl in self._deadlocks if dl["broken"] is None)
            return {"crashed": crashed, "why": why, "result_failed": bool(failed), "deadlocked": deadlocks}


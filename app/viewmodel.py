"""A run folded into what its pages show: thread lanes over time, deadlocks, log instants, and why it ended.

A :class:`ViewModel` reads its run's :class:`~app.eventlog.EventLog` with a cursor, like a viewer: each
request folds only the events that arrived since the last one, so a 230k-event run is parsed once, not
on every 2-second timeline poll. What it keeps is compact (``array`` columns, interned strings, a
sample only when something changed), never the events themselves.

A lane is one thread's life, keyed by ident *and* start: CPython gives a finished thread's ident to
the next one and lessons reuse names, so "Handler-1" started twice gets two lanes, the second shown as
"Handler-1 ·2". Snapshot rows are matched to lanes by ident and ``native_id`` (the OS thread id, which
is not reused while two threads could be confused). A lane once ended stays ended: a snapshot taken
just before the end and written after it, or an end event after a snapshot that saw it finished, is
the same life, never a second lane nor a second crash.

States come from two sources. ``thread``/``state`` events are true transitions and win; a snapshot's
state is used for what no traced primitive reports (sleeping, waiting-io, an untraced wait), and for
older runs that have no ``state`` events at all.

A finished run's model is saved beside its log and read back instead of being folded again
(app/models.py decides when, app/model_store.py reads and writes it). A fold parses the lines it
reads from the file in batches (app/lineparse.py): about 2 µs an event in all, parse included.

Times: the model stores epoch seconds; everything it returns is run seconds, from the run's first event.
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from collections import deque
from itertools import chain
from typing import Any

from .lanes import Lane, as_names, as_text
from .lineparse import parse_lines
from .output import safe_parse
from .viewquery import Questions

BATCH = 10_000  # events read from the log at a time
PARSE_AHEAD = 64  # lines parsed together (app/lineparse.py) before they are folded
MAX_MARKS = 20_000  # ticks (sync, log, signal) kept for drawing; the file has the rest
MAX_EPOCH = 1e11  # seconds; a larger `t` is a lesson's mistake and would void the axis
TRACED_WAITS = frozenset({"waiting-lock", "waiting-condition", "waiting-event", "waiting-queue",
                          "waiting-join"})
LOG_KINDS = ("log", "stdout", "stderr", "signal")
# What a finished run's page history is drawn from without reading every event (app/models.py's
# page_history): the newest log rows (the page shows the newest 300) and the newest of each kind
# the page shows one of.
HISTORY_ROWS = 1000
LATEST_KINDS = frozenset({"threads", "result", "deadlock", "stacks", "check", "prediction"})
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")  # "RuntimeError: boom", the end of a traceback


class ViewModel(Questions):
    """A run's events folded; what the pages ask of them is in :class:`~app.viewquery.Questions`."""

    def __init__(self, run: Any = None) -> None:
        self.run = run
        # _lock guards every field below: request threads share a model; one folds while others wait
        # (they would need the same events anyway). Held across the log read, never across anything
        # that waits on another lock but the EventLog's own, which is never held while calling us.
        self._lock = threading.RLock()
        self._cursor = -1  # the number (seq) of the log's last line folded
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
        self.exception: str | None = None  # the last line of the last traceback (stderr or logged)
        self._in_traceback = False
        self.rows = 0  # log rows (events of LOG_KINDS), whatever their time says
        self.newest_rows: deque[int] = deque(maxlen=HISTORY_ROWS)  # their line numbers, the newest
        self.newest: dict[str, int] = {}  # kind (LATEST_KINDS) -> the line number of its newest event

    # -- folding --------------------------------------------------------------------------------

    def refresh(self) -> ViewModel:
        """Fold whatever the run's log has gained since last time."""
        with self._lock:
            if self._complete or self.run is None:
                return self
            log = self.run.log
            closed = log.closed  # read first: if closed now, the reads below see every event
            fold = self._fold
            while batch := log.read(self._cursor, BATCH):
                if batch[0][1] is None:  # read from the file: every line raw
                    raws = [raw for raw, _ in batch]
                    # A few dozen at a time, each folded before the next are parsed: parsed a
                    # whole read ahead (a thousand thread snapshots among 10,000 events, all in
                    # memory at once), the fold of scripts/bench_view.py's run took 1.6x as long.
                    events = chain.from_iterable(parse_lines(raws[i:i + PARSE_AHEAD])
                                                 for i in range(0, len(raws), PARSE_AHEAD))
                else:  # the log's recent tail, parsed when it was written
                    events = (event if event is not None else safe_parse(raw) for raw, event in batch)
                for event in events:
                    self._cursor += 1
                    if event is not None:
                        fold(event)
            self._complete = closed
        return self

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards the model: held by whoever folds it or fills it from a saved copy
        (app/models.py), so two viewers never build one run's model twice."""
        return self._lock

    @property
    def count(self) -> int:
        with self._lock:
            return self._cursor + 1

    @property
    def complete(self) -> bool:
        with self._lock:
            return self._complete

    @property
    def done(self) -> bool:
        """``complete`` at a glance, without waiting for a fold under way (app/models.py's cache)."""
        return self._complete

    def fold(self, event: dict[str, Any]) -> None:
        """Fold one parsed event (odd fields are skipped, never raise)."""
        with self._lock:
            self._fold(event)

    def _fold(self, event: dict[str, Any]) -> None:
        # Called once per event of the run (a million for a flood), with the lock held: exact types
        # instead of isinstance, one dict lookup for the handler, no call where none is needed.
        kind = event.get("kind")
        row = kind in LOG_KINDS
        if row:
            self.rows += 1
            self.newest_rows.append(self._cursor)
        elif type(kind) is str and kind in LATEST_KINDS:
            self.newest[kind] = self._cursor
        t = event.get("t")
        if (type(t) is not float and type(t) is not int) or not -MAX_EPOCH < t < MAX_EPOCH:
            return  # also a bool, NaN and infinity
        t = float(t)
        if self.first_t is None:
            self.first_t = t
        elif t < self.first_t:
            t = self.first_t
        if t > self.last_t:
            self.last_t = t
        handler = _HANDLERS.get(kind) if type(kind) is str else None
        if row:
            seq = event.get("seq")
            self._log_t.append(t)
            self._log_seq.append(seq if isinstance(seq, int) else self._cursor)
        if (handler is None or handler(self, t, event) is not False) and kind != "threads":
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
            crash = None
            if op == "crash":
                exc = event.get("exc") if isinstance(event.get("exc"), dict) else {}
                crash = {"type": as_text(exc.get("type"), "Exception"),
                         "message": as_text(exc.get("message"), ""), "where": event.get("where"), "t": t}
            if lane is None and (lane := self._match(name, ident, event.get("native_id"))) is not None \
                    and lane.end is not None:
                # A snapshot saw it finished first: the same life, whose end (and crash) this
                # event tells exactly. Never a second lane, nor a crash counted twice.
                self._reopen(lane, t)
            self._end(lane or self._new_lane(name, ident, t), t, crash)  # new: born and gone unseen

    @staticmethod
    def _reopen(lane: Lane, t: float) -> None:
        """Undo a lane's end drawn from a snapshot, for an exact end event at ``t`` to redo it: the
        sample's end is up to an interval late, the event's is when it happened."""
        if t < lane.end and lane.cs and lane.cs[-1] in ("done", "crashed"):
            lane.ct.pop()
            lane.cs.pop()
            lane.co.pop()
            lane.end, lane.crash = None, None  # the event says how it ended

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
            if lane is not None and lane.end is not None:
                if not alive or t <= lane.end or (native is not None and lane.native == native):
                    # Already ended: a finished thread the sampler still lists, or a live row
                    # taken just before the thread's end event and written after it (the same
                    # OS thread). Neither revives the lane nor counts its crash again.
                    continue
                lane = None  # a later life of the same name (no native id to tell them apart)
            if lane is None:
                lane = self._new_lane(name, ident, t)
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
        if error and isinstance(event.get("exc"), str):  # a traceback logged (log.exception)
            last = event["exc"].rstrip().rpartition("\n")[2]
            if _EXC_LINE.match(last):
                self.exception = last[:300]
        if self._marks >= MAX_MARKS and not error:
            return  # as _mark would, before the work for a tick nobody draws (most of a flood)
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


# kind -> ViewModel._on_<kind>, looked up once per event by _fold
_HANDLERS = {name[4:]: func for name, func in vars(ViewModel).items() if name.startswith("_on_")}

"""Signals and slots: workers announce results, a UI thread receives them through its event loop.

Problem:
    Workers that call the UI directly are tied to it, and all of them touch its state at once.
    A ``Signal`` (``lessons.kit.signals``, app-level, not POSIX) decouples them: workers only emit
    ``item_ready``; whoever cares connects a slot. A *direct* slot runs in the emitting Worker, so
    it needs a lock like any shared code. A *queued* slot (``connect(slot, loop=ui_loop)``, Qt's
    QueuedConnection) is posted to the UI thread's ``EventLoop``: only UI touches its state, no
    lock. A ``Popup`` connected by a bound method is held weakly: once collected, its slot is gone.

What to watch:
    The thread column: "counted item (direct)" comes from Worker-1..N, "showing item (queued)"
    only from UI, just after its emit. Halfway, the Barrier's last worker closes the popup:
    ``len(item_ready)`` drops from 3 to 2, the popup gets no more. UI idles in ``waiting-queue``.

Expected output:
    ``emitted = delivered_direct = delivered_queued`` (24 with defaults),
    ``slot_threads = {'count_item': ['Worker-1', 'Worker-2', 'Worker-3'], 'show_item': ['UI']}``,
    ``popup_calls = 12`` (the first half only), ``dropped_after_gc = 1``, ``shown_outside_ui = 0``;
    ``slowest_emit_ms`` and ``ui_lag_ms`` (UI busy after the last emit) a few ms at most.

Failure modes:
    Tempting but wrong: a worker calling the consumer itself, or a direct slot changing UI state
    without a lock (it runs in several threads at once and loses updates). Queue into the owner's
    loop; Qt's ``AutoConnection`` does when the receiver lives in another thread. Strong references
    keep closed windows alive and called: hold bound methods by ``weakref.WeakMethod``. A signal
    calling slots under its lock deadlocks a slot that emits: copy the list under it, call outside.

Exercises:
    1. Connect ``ui.show_item`` without ``loop=``: now its calls run in the Workers
       (``shown_outside_ui`` above 0), none in UI. What must ``UI`` then guard with a lock?
    2. Give the queued slot ``UI.show_item`` a ``time.sleep(0.1)``: the workers do not slow down
       (``slowest_emit_ms`` stays small) but UI falls behind (``ui_lag_ms`` over 500). Then try
       the direct slot ``Stats.count_item``: which numbers move now?
    3. Give ``Popup`` a reference cycle (``self.me = self`` in ``__init__``) and delete the
       ``gc.collect()`` line: ``popup_calls`` grows past half, ``dropped_after_gc`` falls to 0. Why?
"""

from __future__ import annotations

import collections
import gc
import threading
import time

from lessons import kit
from lessons.kit.signals import EventLoop, Signal

BARRIER_TIMEOUT = 10.0  # seconds at half-time: workers arrive ms apart, so 10 s means one broke


def delivery() -> str:  # how the running slot was called: only queued calls run in UI (no emits)
    return "queued" if threading.current_thread().name == "UI" else "direct"


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--workers", type=kit.int_range(1, 8), default=3, help="worker threads")
    parser.add_argument("--items", type=kit.int_range(1, 100), default=8,
                        help="items each worker makes (the popup is closed after half of them)")
    parser.add_argument("--item-ms", type=kit.int_range(0, 500), default=100,
                        help="milliseconds to make one item (slow enough to follow live)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


class Stats:
    """Its slot is connected directly: it runs in whichever Worker emits, several at once."""

    def __init__(self, log) -> None:
        self.log = log
        self._lock = threading.Lock()  # guards calls and threads: Workers run count_item at once
        self.calls, self.threads = 0, set()

    def count_item(self, worker: str, number: int) -> None:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        self.log.info("counted item %d of %s (%s)", number, worker, delivery(),
                      extra={"slot": "count_item"})


class UI:
    """Its slot is queued into ui_loop: only the UI thread ever runs it, so no lock is needed."""

    def __init__(self, log) -> None:
        self.log = log
        self.shown, self.last_at = 0, 0.0
        self.threads: collections.Counter[str] = collections.Counter()  # thread name -> calls

    def run(self, loop: EventLoop, stop: threading.Event, timeout: float) -> None:
        self.log.info("event loop running: every queued slot runs here, one call at a time")
        ran = loop.run(stop=stop, timeout=timeout)  # until stop is set and the queue is drained
        self.log.info("event loop done after %d queued calls", ran)

    def show_item(self, worker: str, number: int) -> None:
        self.shown += 1
        self.threads[threading.current_thread().name] += 1
        # delivery() says "direct" if it was connected without loop=: then it needs a lock.
        self.log.info("showing item %d of %s, %d shown (%s)", number, worker, self.shown,
                      delivery(), extra={"slot": "show_item"})
        self.last_at = time.monotonic()


class Popup:
    """A window the user will close; connected by a bound method, so the signal holds it weakly."""

    def __init__(self, calls: list) -> None:
        self.calls = calls  # outlives the popup, so the result can show what it received

    def on_item(self, worker: str, number: int) -> None:
        self.calls.append((worker, number))  # one list.append: atomic, safe from several Workers


def worker(item_ready: Signal, args, half_time: threading.Barrier, emitted: dict) -> None:
    me = threading.current_thread().name
    for number in range(1, args.items + 1):
        if number == args.items // 2 + 1:
            half_time.wait(timeout=BARRIER_TIMEOUT)  # every worker has emitted its first half
        time.sleep(args.item_ms / 1000)  # stands for real work
        began = time.perf_counter()
        item_ready.emit(me, number)  # knows nothing about who listens; direct slots run right now
        emitted[me] = (number, max(time.perf_counter() - began, emitted.get(me, (0, 0))[1]))


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    item_ready = Signal("item_ready")
    ui_loop = EventLoop("UI")  # its queue gets a call per emit from any Worker; only UI runs them
    stats, ui, popup_calls = Stats(log), UI(log), []
    popups = [Popup(popup_calls)]  # the only strong reference to the popup
    item_ready.connect(stats.count_item)  # direct: runs in the emitting thread
    item_ready.connect(ui.show_item, loop=ui_loop)  # queued: runs in the UI thread
    item_ready.connect(popups[0].on_item)  # direct, held weakly
    log.info("item_ready has %d slots: direct Stats, queued UI, direct Popup", len(item_ready))
    dropped: list[int] = []

    def close_popup() -> None:
        # A Barrier action runs once, in the last worker to arrive, while every worker waits.
        before = len(item_ready)
        popups.clear()  # the popup's refcount drops to 0: it is freed, its WeakMethod goes dead
        gc.collect()  # certain even if a reference cycle (or PyPy) kept it alive
        dropped.append(before - len(item_ready))
        log.info("popup closed and freed: slots %d -> %d, no disconnect()", before, len(item_ready))

    half_time = threading.Barrier(args.workers, action=close_popup)
    workers_done = threading.Event()  # set by main after joining every worker; UI's loop watches it
    emitted: dict[str, tuple[int, float]] = {}  # worker -> (items, slowest emit s); its own key
    budget = BARRIER_TIMEOUT + args.items * args.item_ms / 1000 + 5  # seconds: worst case, plus 5
    ui_thread = threading.Thread(target=ui.run, name="UI", args=(ui_loop, workers_done, budget + 5))
    workers = [threading.Thread(target=worker, name=f"Worker-{i}",
                                args=(item_ready, args, half_time, emitted))
               for i in range(1, args.workers + 1)]
    for thread in [ui_thread, *workers]:
        thread.start()
    for thread in workers:
        thread.join(timeout=budget)
    workers_done.set()  # UI drains the calls already queued, then its loop returns
    done_at = time.monotonic()
    ui_thread.join(timeout=budget)  # a slow UI may still have a backlog to show
    total = sum(n for n, _ in emitted.values())
    slowest = max((s for _, s in emitted.values()), default=0.0)
    kit.emit_result(emitted=total, delivered_direct=stats.calls, delivered_queued=ui.shown,
                    slot_threads={"count_item": sorted(stats.threads),
                                  "show_item": sorted(ui.threads)},
                    popup_calls=len(popup_calls), dropped_after_gc=sum(dropped),
                    shown_outside_ui=ui.shown - ui.threads["UI"],
                    slowest_emit_ms=round(slowest * 1000, 1),
                    ui_lag_ms=round(max(0.0, ui.last_at - done_at) * 1000))
    return 0 if total == stats.calls == ui.shown == ui.threads["UI"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""POSIX signals and threads: the handler takes a note, the main thread acts, workers stop.

Problem:
    A signal (Ctrl-C sends SIGINT, ``kill`` SIGTERM, ``kill -USR1`` SIGUSR1) hits the process, but
    CPython runs a Python handler only in the main thread, between two bytecodes of whatever it
    was doing. So the handler only takes a note; the main loop acts on it within ``TICK`` (SIGINT
    or SIGTERM: set ``stop``; SIGUSR1: set each worker's ``report`` Event), and the workers, which
    never see a signal, notice their Events and stop cleanly: exit 0, nothing half-done.
    On Windows there is no SIGUSR1 (skipped here), no other process can deliver SIGTERM
    (``TerminateProcess`` ends a program, no handler runs), and Ctrl-C reaches console programs
    only, from a thread the OS starts; Python still runs the handler in the main thread.

What to watch:
    The Installer thread's ``signal.signal()`` fails with ``ValueError``. After ``--usr1-after`` s
    the Sender thread sends SIGUSR1 to its own process, yet the handler runs in MainThread; each
    worker logs a progress report and carries on. Press Ctrl-C (or SIGINT / SIGTERM on the page,
    ``kill -USR1 <pid>`` with the logged pid, or ``--term-after``): "got SIGINT: stopping workers",
    then every worker logs "stopping cleanly" at once. Workers sit in ``waiting-event``.

Expected output:
    ``ended_by = timeout`` (or ``SIGINT``, ``SIGTERM``), ``workers_stopped_cleanly = 3``,
    ``reports = 3`` per SIGUSR1, ``handler_threads = ['MainThread']``, ``shutdown_ms`` < 300.

Failure modes:
    The tempting wrong tool is real work in the handler: logging, ``Event.set()`` and ``join()``
    take locks, and if the signal lands while the main thread holds that lock, the process deadlocks
    on itself (the ``signal`` docs warn against locks in handlers). Take a note (one append), act on
    it in the main loop. A main thread blocked without a timeout delays that; loop on
    ``stop.wait(TICK)``. ``signal.signal`` in a worker raises ``ValueError``: install handlers at
    start-up, in the main thread. No thread can be killed from outside: each checks an Event.

Exercises:
    1. End the run early with SIGTERM (the page's button, ``kill -TERM <pid>`` or ``--term-after
       3``): every worker still stops cleanly, ``shutdown_ms`` under 300, exit 0.
    2. Set ``TICK = 3.0`` and send SIGTERM 1 s in (``--term-after 1``): ``shutdown_ms`` passes
       1000 though the handler ran at once. Why does it not cut ``stop.wait(TICK)`` short?
    3. Make SIGTERM end the process at once, for a worker that never checks ``stop``: call
       ``os._exit(143)`` in the handler for SIGTERM, send one. What does the run skip?
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time

from lessons import kit

SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")  # the dashboard offers a button for each
TICK = 0.1  # seconds between the main loop's looks at the handler's notes: a signal's longest wait
JOIN_TIMEOUT = 2.0  # a worker answers `stop` within one item (<= 1 s); twice that, then give up


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--workers", type=kit.int_range(1, 8), default=3, help="worker threads")
    parser.add_argument("--duration", type=kit.float_range(0.5, 600), default=8.0,
                        help="seconds to run unless SIGINT/SIGTERM ends it (time to press Ctrl-C)")
    parser.add_argument("--item-ms", type=kit.int_range(10, 1000), default=100,
                        help="milliseconds per work item: the longest a worker takes to notice")
    parser.add_argument("--usr1-after", type=kit.float_range(0, 600), default=2.0,
                        help="seconds until the Sender thread sends SIGUSR1 to us (0: never)")
    parser.add_argument("--term-after", type=kit.float_range(0, 600), default=0.0,
                        help="seconds until the Sender sends SIGTERM to us, like kill (0: never)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def worker(stop: threading.Event, report: threading.Event, item_s: float, summary: dict, log):
    log.info("started: one item every %.0f ms", item_s * 1000)
    items = reports = 0
    # The "work" is stop.wait(): an interruptible sleep, so `stop` is seen within one item.
    while not stop.wait(item_s):
        items += 1
        if report.is_set():
            report.clear()  # only this worker clears its own report Event
            reports += 1
            log.info("progress report: %d items done", items, extra={"items": items})
    log.info("stopping cleanly after %d items", items)
    summary[threading.current_thread().name] = reports  # one write, to this thread's own key


def try_to_install(handler, outcome: list, log):
    try:
        signal.signal(signal.SIGINT, handler)
        outcome.append("installed")
    except ValueError as error:  # CPython: only the main thread may install a handler
        outcome.append("ValueError")
        log.info("signal.signal() raised ValueError (%s): install handlers in the main "
                 "thread, before any worker starts", error)


def send_to_self(args, stop: threading.Event, log):
    began = time.monotonic()
    for after, name in sorted([(args.usr1_after, "SIGUSR1"), (args.term_after, "SIGTERM")]):
        if after <= 0 or not hasattr(signal, name):
            continue  # not asked for (0), or not on this platform (Windows has no SIGUSR1)
        if stop.wait(max(0.0, began + after - time.monotonic())):
            return  # stopped first
        log.info("sending %s to my own process: which thread will run the handler?", name)
        os.kill(os.getpid(), getattr(signal, name))


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    notes: list[tuple[str, str, float]] = []  # (signal, thread running the handler, when)

    def on_signal(signum, _frame):
        # Runs in the main thread, between two bytecodes of whatever it was doing. One append is
        # atomic and takes no lock; logging or Event.set() here could deadlock (Failure modes).
        notes.append((signal.Signals(signum).name, threading.current_thread().name,
                      time.monotonic()))

    # After kit.setup, so ours replaces the kit's SIGINT handler (which sets an Event inside it).
    for name in SIGNALS:
        if hasattr(signal, name):  # Windows has no SIGUSR1
            signal.signal(getattr(signal, name), on_signal)

    stop = threading.Event()  # set only by the main loop below; workers and Sender wait on it
    reports = [threading.Event() for _ in range(args.workers)]  # one per worker: main sets it
    summary: dict[str, int] = {}  # worker name -> reports it logged, written as it ends
    installed: list[str] = []  # the Installer thread's outcome, read after it is joined
    threads = [threading.Thread(target=try_to_install, name="Installer",
                                args=(on_signal, installed, log)),
               threading.Thread(target=send_to_self, name="Sender", args=(args, stop, log))]
    workers = [threading.Thread(target=worker, name=f"Worker-{i + 1}",
                                args=(stop, reports[i], args.item_ms / 1000, summary, log))
               for i in range(args.workers)]
    for thread in threads + workers:
        thread.start()
    log.info("pid %d running for %.1fs: press Ctrl-C, or try kill -USR1 %d",
             os.getpid(), args.duration, os.getpid())

    deadline = time.monotonic() + args.duration
    ended_by, stop_at, seen = "timeout", deadline, 0
    while not stop.wait(TICK):  # the timeout is the point: act on a note within TICK seconds
        new = notes[seen:]
        seen += len(new)
        for name, ran_in, at in new:
            if name == "SIGUSR1":
                log.info("got SIGUSR1 (handler ran in %s): asking workers for a progress report",
                         ran_in)
                for report in reports:
                    report.set()
            elif not stop.is_set():
                log.info("got %s (handler ran in %s): stopping workers", name, ran_in)
                ended_by, stop_at = name, at
                stop.set()
        if not stop.is_set() and time.monotonic() >= deadline:
            log.info("%.1fs are up: stopping workers", args.duration)
            stop.set()

    for thread in threads + workers:
        thread.join(timeout=JOIN_TIMEOUT)
    clean = sum(1 for t in workers if not t.is_alive() and t.name in summary)
    kit.emit_result(ended_by=ended_by,
                    signals_received=dict(collections.Counter(name for name, _, _ in notes)),
                    handler_threads=sorted({ran_in for _, ran_in, _ in notes}),
                    reports=sum(summary.values()), workers_stopped_cleanly=clean,
                    workers=args.workers, shutdown_ms=round((time.monotonic() - stop_at) * 1000),
                    install_in_thread=installed[0] if installed else "no answer")
    return 0 if clean == args.workers else 1


if __name__ == "__main__":
    raise SystemExit(main())

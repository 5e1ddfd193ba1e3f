"""Qt: a worker object in a QThread reporting progress to the main thread through signals.

Problem:
    A Qt program keeps its event loop and GUI objects in the main thread, so slow work moves to a
    ``QThread``: a worker ``QObject`` moved there (``moveToThread``) emits ``progress`` signals. Qt
    picks per connection where a slot runs: a main-thread ``QObject``'s slot is *queued* to the main
    event loop; a plain function or lambda belongs to no thread, so it is called *directly*, in the
    emitting thread. The log proves both, headless (``QCoreApplication``, offscreen).

What to watch:
    The worker's first line comes from ``Dummy-1``: ``threading`` invents a dummy Thread for a
    thread Python did not start, until the worker renames it ``Qt-Worker``. Each step logs twice:
    the function slot in ``Qt-Worker``, the receiver's in ``MainThread`` (Qt: ``Qt mainThread``).
    Up to Python 3.12 ``threading`` never sees an alien thread end: ``Qt-Worker`` stays "alive" in
    the thread table. 3.13+ drops it once Python forgets the thread's state: here as soon as
    ``Worker.run`` returns, while the QThread still runs (gh-114423).

Expected output:
    Ten steps, then ``progress_received = 10``, ``slot_threads`` with ``receiver_slot: MainThread``
    and ``function_slot: Qt-Worker``, ``receiver_behind_ms`` near 0 (each call is delivered as it is
    queued), ``finished_cleanly = 1``. Without PySide6: ``skipped = 1``.

Failure modes:
    Touching a widget from the worker, or connecting its slot with ``DirectConnection``, runs GUI
    code in the wrong thread: an occasional crash, never in the demo. Emit a signal; Qt queues it.
    Slots of a ``QThread`` subclass run in the *creating* thread: ``moveToThread`` a worker instead.
    ``terminate()`` can kill a thread holding a lock: ask it to stop, ``quit()``, ``wait(timeout)``.

Exercises:
    1. Make ``Receiver.on_progress`` run in ``Qt-Worker`` for every step by running with
       ``--receiver-connection direct``. Were the receiver a progress bar, that is the bug.
    2. Delete the line in ``Worker.run`` that renames the Python thread: the worker's log lines
       (and ``worker_thread_name``) now say ``Dummy-N``, as ``threading`` cannot read Qt's name.
    3. Add ``time.sleep(0.2)`` to ``Receiver.on_progress`` (a slow GUI update): the worker still
       finishes in ``worker_ms``, but the receiver ends over 750 ms later (``receiver_behind_ms``)
       with every step delivered: the queued calls wait in the main thread's event queue.
"""

from __future__ import annotations

import os
import threading
import time

from lessons import kit

REQUIRES = ("qt",)  # the optional extra: pip install 'threadlab[qt]'
POLL_MS = 100  # the main loop runs Python this often, so Ctrl-C (a Python handler) gets a turn
WAIT_MS = 3000  # for the worker to end: one step (at most 1 s) after `stop`, with room to spare


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--steps", type=kit.int_range(1, 1000), default=10,
                        help="progress signals the worker emits")
    parser.add_argument("--step-ms", type=kit.int_range(0, 1000), default=50,
                        help="milliseconds of work per step: slow enough to watch lines interleave")
    parser.add_argument("--timeout", type=kit.float_range(1, 600), default=10.0,
                        help="seconds before the event loop gives up on the worker")
    parser.add_argument("--receiver-connection", choices=("auto", "queued", "direct"),
                        default="auto", help="Receiver's connection; auto: queued across threads")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def make_classes(QtCore, stop: threading.Event, log):
    """The Qt classes, built here because PySide6 is imported only when the lesson runs."""
    class Worker(QtCore.QObject):
        progress = QtCore.Signal(int)
        finished = QtCore.Signal()

        def __init__(self, steps: int, step_s: float) -> None:
            super().__init__()
            self.steps, self.step_s = steps, step_s
            # Written in the worker thread; main reads them only after thread.wait() returned.
            self.sent, self.python_name, self.thread_name = 0, "", ""
            self.began = self.done_at = 0.0  # time.monotonic() when run() began and ended

        @QtCore.Slot()
        def run(self) -> None:
            self.began = time.monotonic()
            me = threading.current_thread()
            self.python_name = me.name
            log.info("Python sees %r (a %s): Qt started this thread", me.name, type(me).__name__)
            me.name = QtCore.QThread.currentThread().objectName()  # now the logs say Qt-Worker
            self.thread_name = me.name
            for step in range(1, self.steps + 1):
                if stop.is_set():  # a thread cannot be killed safely, only asked to stop
                    log.info("asked to stop after %d steps", self.sent)
                    break
                time.sleep(self.step_s)  # stands for real work: a download, a file scan...
                self.sent += 1
                self.progress.emit(step)  # direct slots run before emit returns; queued ones later
            self.done_at = time.monotonic()
            self.finished.emit()

    class Receiver(QtCore.QObject):  # lives in the main thread, as every widget must
        def __init__(self) -> None:
            super().__init__()
            # Written by the thread that runs the slot: main, unless the connection is direct.
            self.received, self.threads, self.last_at = 0, set(), 0.0

        @QtCore.Slot(int)
        def on_progress(self, step: int) -> None:
            self.received += 1
            self.last_at = time.monotonic()
            self.threads.add(threading.current_thread().name)
            log.info("receiver slot: step %d (Qt calls this thread %r)",
                     step, QtCore.QThread.currentThread().objectName())

    return Worker, Receiver


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    try:
        from PySide6 import QtCore
    except ImportError as exc:
        log.warning("PySide6 missing (%s): pip install 'threadlab[qt]' (scripts/serve does)", exc)
        kit.emit_result(skipped=1)
        return 0

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before the app: no screen to look for
    app = QtCore.QCoreApplication.instance() or QtCore.QCoreApplication([])
    stop = threading.Event()  # set by Ctrl-C or after the loop; the worker checks it between steps
    kit.cancel_on_interrupt(stop)
    timed_out = threading.Event()  # set by the timeout timer; the poll timer then ends the loop
    Worker, Receiver = make_classes(QtCore, stop, log)
    thread = QtCore.QThread()
    thread.setObjectName("Qt-Worker")  # Qt's name; Python's threading can't see it (see Worker.run)
    worker = Worker(args.steps, args.step_ms / 1000)
    worker.moveToThread(thread)  # from now on its slots run in `thread`
    receiver = Receiver()
    function_threads: set[str] = set()  # added to by whichever thread calls the function slot

    def function_slot(step: int) -> None:
        function_threads.add(threading.current_thread().name)
        log.info("function slot: step %d", step)

    connection = getattr(QtCore.Qt.ConnectionType, f"{args.receiver_connection.title()}Connection")
    thread.started.connect(worker.run)  # emitted in the new thread, where the worker lives
    worker.progress.connect(receiver.on_progress, connection)
    worker.progress.connect(function_slot)  # no receiver object, so no thread to queue it to
    worker.finished.connect(app.quit)  # queued behind the progress calls posted before it
    QtCore.QTimer.singleShot(int(args.timeout * 1000), timed_out.set)
    poll = QtCore.QTimer()
    poll.timeout.connect(lambda: (stop.is_set() or timed_out.is_set()) and app.quit())
    poll.start(POLL_MS)
    log.info("starting %s: %d steps of %d ms", thread.objectName(), args.steps, args.step_ms)
    thread.start()
    app.exec()  # the main event loop: runs the queued slots until quit()
    if timed_out.is_set():
        log.warning("no finish after %.1fs: asking the worker to stop", args.timeout)
    stop.set()  # the loop may have ended early (Ctrl-C, timeout): the worker stops at its next step
    thread.quit()  # ends the QThread's own event loop, which runs after Worker.run returns
    finished = thread.wait(WAIT_MS)
    app.processEvents()  # deliver queued calls posted after the loop ended, so none is lost
    log.info("%s %s", thread.objectName(), "finished" if finished else "did NOT finish in time")

    kit.emit_result(progress_sent=worker.sent, progress_received=receiver.received,
                    slot_threads={"receiver_slot": ", ".join(sorted(receiver.threads)),
                                  "function_slot": ", ".join(sorted(function_threads))},
                    receiver_connection=args.receiver_connection,
                    worker_ms=round((worker.done_at - worker.began) * 1000),
                    # How long after the worker's last emit its last step reached the receiver.
                    receiver_behind_ms=max(0, round((receiver.last_at - worker.done_at) * 1000)),
                    worker_thread_name=worker.thread_name, python_name_before=worker.python_name,
                    timed_out=int(timed_out.is_set()), finished_cleanly=int(finished))
    return 0 if finished and not timed_out.is_set() and receiver.received == worker.sent else 1


if __name__ == "__main__":
    raise SystemExit(main())

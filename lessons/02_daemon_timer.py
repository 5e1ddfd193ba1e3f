"""Timers and daemon threads: run later, cancel, repeat, and what interpreter exit does to daemons.

Problem:
    A ``threading.Timer(delay, function)`` thread waits ``delay`` seconds, then calls ``function``
    unless ``cancel()`` came first. To repeat work, one thread looping on ``Event.wait(interval)``
    is better: a sleep that ends once the event is set. Last, lesson 01's ``daemon`` flag for real:
    at exit a child interpreter waits for its normal thread but kills its daemon, losing its work.

What to watch:
    ``Timer-1`` .. ``Timer-4`` sit in ``waiting-event`` until due; the first half fire, then main
    cancels them all and the rest end unfired. ``Ticker`` ticks every ``--tick-ms`` and, stopped
    mid-wait, ends at once (a millisecond or so). The child: "worker done" shows, "daemon done" not.

Expected output:
    "fired" lines from Timer-1 and Timer-2, four "tick" lines, the child's output, then
    ``Result: timers_fired = 2, timers_cancelled = 2, repeats = 4, stop_ms = 0`` (or 1),
    ``daemon_work_lost = 1, non_daemon_work_kept = 1`` and the child's run time in ms.

Failure modes:
    A ``time.sleep(interval)`` loop checking a flag notices a stop only after its sleep; use
    ``Event.wait(interval)``. A ``Timer`` re-armed in its own callback makes a thread per tick and
    a cancel that can miss; use one looping thread. ``daemon=True`` on work that must finish (saving
    a file) loses it silently at exit; keep it non-daemon, stop it with an Event and
    ``join(timeout=...)``. A forgotten non-daemon Timer keeps the program alive; ``cancel()`` it.

Exercises:
    1. Keep ``--daemon-ms 1000`` and change only ``--worker-ms`` so that the daemon's work is kept
       (``daemon_work_lost = 0``). What kept the daemon alive, and would you rely on it?
    2. In ``tick_every``, replace ``stop.wait(interval_s)`` with ``time.sleep(interval_s)`` plus
       ``if stop.is_set(): break`` and run ``--tick-ms 2000 --ticks 1``: make ``stop_ms`` show
       the cost (hundreds of ms instead of about 0).
    3. In ``CHILD_CODE``, keep the daemon thread in a variable and ``join(timeout=2)`` it at the
       end: its work is kept (``daemon_work_lost = 0``) with the default times. What does it cost
       the child's run time (``child_ms``)?
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from lessons import kit

# The child: its own process, so it may print and its exit does not end ours. Its main code ends
# at once; at exit Python joins every non-daemon thread, then stops daemons mid-work (no finally).
CHILD_CODE = """
import sys, threading, time
def work(label, seconds):
    time.sleep(seconds)  # stands for work that takes a while, like writing a file
    print(label, "done", flush=True)
worker_s, daemon_s = float(sys.argv[1]), float(sys.argv[2])
threading.Thread(target=work, args=("daemon", daemon_s), name="Daemon", daemon=True).start()
threading.Thread(target=work, args=("worker", worker_s), name="Worker").start()
print("main done: the interpreter now waits for non-daemon threads only", flush=True)
"""
CHILD_STARTUP_S = 10.0  # slack for starting a child interpreter on a slow, busy machine
JOIN_TIMEOUT = 2.0  # a cancelled Timer or a stopped Ticker ends in microseconds; this is plenty


def build_parser():
    parser = kit.lesson_parser(__doc__)
    for flag, low, high, default, text in (
        ("--timers", 2, 10, 4, "timers to schedule; the second half get cancelled"),
        ("--timer-step-ms", 50, 2000, 150, "Timer-N fires N times this many ms after the start"),
        ("--tick-ms", 20, 5000, 150, "milliseconds between the Ticker's ticks"),
        ("--ticks", 1, 100, 4, "ticks to let the Ticker make before stopping it mid-wait"),
        ("--worker-ms", 0, 5000, 200, "ms of work for the child's normal (non-daemon) thread"),
        ("--daemon-ms", 0, 10000, 1000, "milliseconds of work for the child's daemon thread"),
    ):
        parser.add_argument(flag, type=kit.int_range(low, high), default=default, help=text)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def run_timers(log, count: int, step_s: float) -> tuple[int, int]:
    """Start ``count`` timers, cancel all once the middle one fired; return (fired, cancelled)."""
    fired: list[int] = []
    fired_lock = threading.Lock()  # guards `fired`: timer threads append, main reads after joining
    halfway = threading.Event()  # set by the middle timer; main waits on it, then cancels the rest
    middle = count // 2

    def fire(number: int) -> None:
        with fired_lock:
            fired.append(number)
        log.info("fired (due %.0f ms after scheduling)", number * step_s * 1000)
        if number == middle:
            halfway.set()

    timers = [threading.Timer(n * step_s, fire, args=(n,)) for n in range(1, count + 1)]
    for number, timer in enumerate(timers, start=1):
        timer.name = f"Timer-{number}"  # Timer takes no name= argument; a Thread's name is writable
        timer.start()
    log.info("scheduled %d timers, %.0f ms apart", count, step_s * 1000)
    # Event-driven, not a guess at the clock: the next timer is a whole step away from firing.
    halfway.wait(timeout=middle * step_s + JOIN_TIMEOUT)
    for timer in timers:
        timer.cancel()  # for a timer that already fired this does nothing; it is never an error
        timer.join(timeout=JOIN_TIMEOUT)  # once its thread has ended, a timer can never fire late
    with fired_lock:
        log.info("cancelled every timer after Timer-%d fired; fired: %s", middle, fired)
        return len(fired), count - len(fired)


def tick_every(interval_s: float, stop: threading.Event, ticks: list[int], log) -> None:
    """Tick every ``interval_s`` until ``stop`` is set; the Ticker thread's whole life."""
    while not stop.wait(interval_s):  # False: the interval passed, tick; True: stop was set
        ticks.append(len(ticks) + 1)  # only this thread appends; main reads after join()
        log.info("tick %d", len(ticks))


def run_ticker(log, interval_s: float, want: int, stop: threading.Event) -> tuple[int, int]:
    """Let the Ticker tick ``want`` times, stop it mid-wait; return (ticks, ms it took to stop)."""
    ticks: list[int] = []
    ticker = threading.Thread(target=tick_every, name="Ticker", args=(interval_s, stop, ticks, log))
    ticker.start()
    # Half an interval past the last wanted tick: the Ticker is surely in the middle of a wait.
    stop.wait((want + 0.5) * interval_s)  # doubles as a sleep that Ctrl-C can cut short
    stop.set()
    asked = time.monotonic()
    ticker.join(timeout=JOIN_TIMEOUT)
    stop_ms = (time.monotonic() - asked) * 1000
    log.info("Ticker stopped %.1f ms after stop.set() (a time.sleep loop could need up to %.0f ms)",
             stop_ms, interval_s * 1000)
    return len(ticks), round(stop_ms)


def run_child(log, worker_s: float, daemon_s: float) -> tuple[int, int, int]:
    """Run CHILD_CODE in a new interpreter; return (daemon work lost, normal work kept, run ms)."""
    began = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD_CODE, str(worker_s), str(daemon_s)],
                           capture_output=True, text=True,
                           timeout=max(worker_s, daemon_s) + CHILD_STARTUP_S)
    took_ms = (time.perf_counter() - began) * 1000
    lines = child.stdout.splitlines()
    for line in lines:
        log.info("child says: %s", line)
    if child.stderr:
        log.warning("child's stderr: %s", child.stderr.strip())
    log.info("child exited with code %d after %.0f ms (its daemon needed %.0f ms)",
             child.returncode, took_ms, daemon_s * 1000)
    return int("daemon done" not in lines), int("worker done" in lines), round(took_ms)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    stop = threading.Event()  # tells the Ticker to stop; set by main, or by Ctrl-C / Stop
    kit.cancel_on_interrupt(stop)
    fired, cancelled = run_timers(log, args.timers, args.timer_step_ms / 1000)
    ticks, stop_ms = run_ticker(log, args.tick_ms / 1000, args.ticks, stop)
    lost, kept, child_ms = run_child(log, args.worker_ms / 1000, args.daemon_ms / 1000)
    kit.emit_result(timers_fired=fired, timers_cancelled=cancelled, repeats=ticks, stop_ms=stop_ms,
                    daemon_work_lost=lost, non_daemon_work_kept=kept, child_ms=child_ms)
    return 0 if kept else 1


if __name__ == "__main__":
    raise SystemExit(main())

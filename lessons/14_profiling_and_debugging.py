"""Profiling and debugging threads: which thread is stuck, and where?

Problem:
    A hung threaded program rarely says why, but Python can look inside: ``threading.enumerate()``
    lists threads, ``sys._current_frames()`` gives their stacks, ``faulthandler`` prints them from C
    (even when Python is wedged), ``threading.excepthook`` catches what a thread raises, and
    ``threading.setprofile`` counts each thread's calls. From outside, ``py-spy dump --pid PID``
    (``pip install py-spy``) prints each thread's stack by name. It attaches with ptrace: as your
    own user if ``/proc/sys/kernel/yama/ptrace_scope`` is 0; at 1 or 2, or in a container without
    CAP_SYS_PTRACE (Docker's default), only with it (``sudo``, ``--cap-add SYS_PTRACE``); 3: never.

What to watch:
    ``Crashing-Worker`` logs its crash through the lesson's hook. Each thread is listed with where
    it is: ``Stuck-Worker`` and ``Heartbeat`` both sit in ``Event.wait`` (one sample cannot tell
    them apart), but only one is in the *same* call a sample later. Then the faulthandler dump.

Expected output:
    ``stuck_thread = Stuck-Worker`` at ``release.wait``, ``exceptions_caught = 1``; in
    ``calls_per_thread`` about 2000 per busy worker, dozens for ``Stuck-Worker``, and hundreds for
    the crasher: its hook's logging runs in the dying thread. ``main_thread_calls = 0``.

Failure modes:
    ``print`` to find a hang shifts its timing and shows only where you guessed: read the stacks.
    ``try/except: pass`` around a thread body hides crashes; ``threading.excepthook`` sees them all.
    ``setprofile`` (per line: ``settrace``) reaches only later threads and slows every call.

Exercises:
    1. Profile ``MainThread`` too: add ``sys.setprofile(count_calls)`` by ``threading.setprofile``
       (and ``sys.setprofile(None)`` in ``finally``): ``main_thread_calls`` then counts its calls.
    2. Make ``Stuck-Worker`` poll: ``while not release.is_set(): time.sleep(0.01)``. ``find_stuck``
       misses it (``stuck_count = 0``), though the dump shows it: no wait frame, as in a C call.
    3. Add ``faulthandler.register(signal.SIGUSR1, file=usr1_dump, all_threads=True)`` in the
       ``with`` and run with ``--usr1-after 0.5`` (or ``--linger 30``, then press SIGUSR1): a dump
       on demand, written by C code. Before, SIGUSR1's default action ends the run at once.
"""

from __future__ import annotations

import collections
import faulthandler
import os
import re
import signal
import sys
import tempfile
import threading
import time

from lessons import kit

SIGNALS = ("SIGINT", "SIGUSR1")  # buttons; SIGUSR1's default action kills us, until exercise 3
JOIN_TIMEOUT = 10.0  # 1,000,000 profiled calls take ~1 s; Stuck-Worker waits this past --linger


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--calls", type=kit.int_range(1, 1_000_000), default=2000,
                        help="small function calls each of the two busy workers makes")
    parser.add_argument("--sample-gap", type=kit.float_range(0.1, 5), default=0.3,
                        help="seconds between the two stack samples that tell stuck from busy")
    parser.add_argument("--linger", type=kit.float_range(0, 600), default=0,
                        help="seconds to stay stuck after the inspection, to attach py-spy")
    parser.add_argument("--usr1-after", type=kit.float_range(0, 5), default=0,
                        help="seconds after the inspection to send ourselves SIGUSR1 (0: never)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def checksum(n: int) -> int:
    return (n * 2654435761) % 2**32  # Knuth's multiplicative hash: a tiny function to call often


def busy_worker(calls: int, log) -> None:
    total = sum(map(checksum, range(calls)))  # one "call" event each (a generator would add more)
    log.info("made %d checksum calls (total %d)", calls, total)


def crashing_worker() -> None:
    int({"id": 42}.get("amount", "n/a"))  # ValueError, and nothing in this thread catches it


def stuck_worker(ready: threading.Event, release: threading.Event, timeout: float, log) -> None:
    log.info("waiting for the release event, which main sets only after the hunt")
    ready.set()  # "the hang has begun": a real hunt would simply look once the program hangs
    release.wait(timeout)  # the hang we hunt; a real one would have no timeout at all


def heartbeat(stop: threading.Event) -> None:
    while not stop.wait(0.05):  # the decoy: waits shorter than --sample-gap, never the same one
        pass


def where(frame) -> str:  # "file:line in function" of the innermost frame in this lesson's file
    while frame is not None and frame.f_code.co_filename != __file__:
        frame = frame.f_back
    return (f"{os.path.basename(__file__)}:{frame.f_lineno} in {frame.f_code.co_name}"
            if frame else "-")


def find_stuck(gap: float, log) -> tuple[list[str], list[tuple[str, str]]]:
    """Two stack samples, ``gap`` apart: a thread still in the *same* wait call is stuck."""
    first = sys._current_frames()
    time.sleep(gap)
    second = sys._current_frames()
    mine = [t for t in threading.enumerate() if not t.name.startswith("threadlab-")]  # not kit's
    stuck = []
    for thread in mine:
        frame = second.get(thread.ident)
        here = where(frame)
        # Same frame *object* in both samples: the call never returned. In threading.py: a wait.
        same_call = (frame is not None and first.get(thread.ident) is frame
                     and frame.f_code.co_filename == threading.__file__)
        log.info("%-14s daemon=%s native_id=%s at %s%s", thread.name, thread.daemon,
                 thread.native_id, here, " (STUCK: same wait all gap long)" if same_call else "")
        if same_call:
            stuck.append((thread.name, here))
    return sorted(t.name for t in mine), stuck


def log_dump(dump, label: str, log) -> None:
    """Log the faulthandler dump in file ``dump`` (from C: not through logging), names added."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    dump.seek(0)
    for line in dump.read().splitlines():
        line = re.sub(r"0x[\da-f]+", lambda m: f"{m[0]} ({names.get(int(m[0], 0), '?')})", line)
        log.info("%s| %s", label, line)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    stop = threading.Event()  # set at the end or by Ctrl-C; Heartbeat and --linger wait on it
    kit.cancel_on_interrupt(stop)
    release = threading.Event()  # what Stuck-Worker waits for; only main sets it, after the hunt
    ready = threading.Event()  # set by Stuck-Worker just before it blocks; main hunts after that
    calls: collections.Counter[str] = collections.Counter()  # each thread adds only to its own key
    caught: list[str] = []  # threads that died: the hook appends, running in the dying thread

    def count_calls(frame, event, arg) -> None:
        if event == "call":  # a Python function starts; "c_call" would be a built-in one
            calls[threading.current_thread().name] += 1

    def log_uncaught(hook: threading.ExceptHookArgs) -> None:
        caught.append(hook.thread.name if hook.thread else "?")
        log.error("uncaught %s: %s", hook.exc_type.__name__, hook.exc_value,
                  exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))

    threading.excepthook = log_uncaught  # the default prints to stderr; we log instead
    threading.setprofile(count_calls)  # every thread started from now on runs count_calls per call
    workers = [threading.Thread(target=busy_worker, name=f"Busy-Worker-{i}", args=(args.calls, log))
               for i in (1, 2)]  # two, to compare their counts with the others
    workers.append(threading.Thread(target=crashing_worker, name="Crashing-Worker"))
    waiters = [threading.Thread(target=stuck_worker, name="Stuck-Worker",
                                args=(ready, release, args.linger + JOIN_TIMEOUT, log)),
               threading.Thread(target=heartbeat, name="Heartbeat", args=(stop,))]
    with tempfile.TemporaryFile("w+") as dump, tempfile.TemporaryFile("w+") as usr1_dump:
        try:
            for thread in workers + waiters:
                thread.start()
            for thread in workers:
                thread.join(timeout=JOIN_TIMEOUT)
            ready.wait(timeout=JOIN_TIMEOUT)
            seen, stuck = find_stuck(args.sample_gap, log)
            faulthandler.dump_traceback(dump, all_threads=True)
            log_dump(dump, "faulthandler", log)
            if args.usr1_after and not stop.wait(args.usr1_after):  # as `kill -USR1 PID` would
                os.kill(os.getpid(), signal.SIGUSR1)
            stop.wait(args.linger)  # time for py-spy dump --pid PID (PID: MainThread's native_id)
            log_dump(usr1_dump, "SIGUSR1", log)  # empty, unless a SIGUSR1 handler wrote to it
        finally:  # whatever happened, leave no thread stuck and no hook installed
            release.set()
            stop.set()
            for thread in waiters:
                thread.join(timeout=JOIN_TIMEOUT)
            threading.setprofile(None)
            threading.excepthook = threading.__excepthook__  # the original, which threading keeps
            faulthandler.unregister(signal.SIGUSR1)  # if registered: before its file closes

    stuck_thread, stuck_where = stuck[0] if len(stuck) == 1 else (f"{len(stuck)} found", "-")
    kit.emit_result(threads_seen=seen, exceptions_caught=len(caught), calls_per_thread=dict(calls),
                    main_thread_calls=calls["MainThread"], stuck_thread=stuck_thread,
                    stuck_where=stuck_where, stuck_count=len(stuck))
    return 0 if stuck_thread == "Stuck-Worker" and len(caught) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())

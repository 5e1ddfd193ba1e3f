"""Locks and race conditions: lost updates on a shared counter, fixed by a Lock or an RLock.

Problem:
    ``counter = counter + 1`` is three steps: read, add one, write back. Two threads that
    interleave between the read and the write both write the same number: one increment is lost.
    Threads add to a counter with no lock (updates vanish), with a ``Lock`` around read-and-write
    (none vanish), then with an ``RLock`` that a function holds while its helper takes it again:
    an RLock counts its owner's takes; a plain Lock would make its owner wait for itself forever.

What to watch:
    ``unlocked`` far below ``expected``; ``locked`` and ``rlocked`` exactly on it. In the thread
    table, ``Locked-*`` and ``RLocked-*`` threads take turns holding ``counter-lock`` or
    ``counter-rlock`` while the others show ``waiting-lock``; ``Unlocked-*`` threads never wait for
    a lock, which is the bug. Each phase's "in ... ms" is the price of taking turns. Last, the main
    thread asks again for ``counter-lock`` it holds and waits for itself until a timeout.

Expected output:
    ``Result: expected = 4000, unlocked = 1000, locked = 4000, rlocked = 4000, lost_updates =
    3000`` with the defaults: the gap makes the threads take turns so evenly that all of them
    together do the work of one. With ``--switch-interval S`` (> 0) the gap is plain Python and
    ``sys.setswitchinterval(S)`` decides how often a switch is forced: the longer S, the rarer
    one lands in the gap.

Failure modes:
    Trusting the GIL. With it, CPython runs some C-implemented steps whole (``list.append``,
    ``d[key] = v`` for a str or int key), but ``counter += 1`` on a shared name is several
    bytecodes (load, add, store), and one bytecode that calls Python code (``__add__``,
    ``__setitem__``, a property) can switch threads inside it; free-threaded builds (3.13t) have
    no GIL at all. A read-modify-write needs a ``Lock`` over the read and the write together; a
    test passing without one proves little (the race is rare, not gone). A plain ``Lock`` taken
    again in a helper deadlocks its owner with itself: use an ``RLock``.

Exercises:
    1. In ``bump_locked``, write the increment out (``value = counter.value``, ``counter.gap()``,
       ``counter.value = value + 1``) and put ``with lock:`` around the write only: make
       ``locked`` fall below ``expected`` although every write is locked.
    2. Make ``counter_rlock`` in ``main`` a ``traced.Lock("counter-rlock")`` and run with
       ``--threads 2 --increments 100``: the kit reports a deadlock (an ``RLocked`` thread waits
       for a lock it holds itself) and the phase is given up after ``STALL`` seconds.
    3. Find a ``--switch-interval`` (try 0.000001, 0.001, 0.1) at which the unlocked counter loses
       no update three runs in a row: the race is hidden, not fixed (the code did not change).
"""

from __future__ import annotations

import sys
import threading
import time

from lessons import kit
from lessons.kit import traced  # drop-in twins of threading's locks that the dashboard can see

LINE_UP_TIMEOUT = 5.0  # seconds the Barrier waits for every thread; threads start in microseconds
STALL = 1.0  # seconds without one increment before a phase counts as stuck (exercise 2)
SELF_WAIT = 0.2  # how long main lets a Lock keep it waiting for itself: long enough to see it
GAP_LOOPS = 20  # the plain-Python gap: ~1 us of loop jumps, each a point where a switch may fall


class Counter:
    """A shared number. Nothing in here is thread-safe: guarding it is the caller's job."""
    def __init__(self, gap) -> None:
        self.value = 0
        self.gap = gap  # what runs between an increment's read and its write


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--threads", type=kit.int_range(2, 16), default=4,
                        help="threads adding to the same counter (at least 2 to race)")
    parser.add_argument("--increments", type=kit.int_range(1, 10_000), default=1000,
                        help="increments per thread (1 or 2 to step through by hand)")
    parser.add_argument("--switch-interval", type=kit.float_range(0.0, 1.0), default=0.0,
                        help="seconds for sys.setswitchinterval, with a plain-Python gap; "
                             "0: the gap gives the GIL away every time (time.sleep(0))")
    parser.add_argument("--part", choices=("all", "unlocked"), default="all",
                        help="unlocked: the race alone, short enough to play in step mode")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def unsafe_increment(counter: Counter) -> None:
    """``counter.value = counter.value + 1``, written out as its real steps."""
    value = counter.value  # 1. read
    counter.gap()  # another thread may run here, between the read and the write
    counter.value = value + 1  # 2. write: overwrites whatever other threads wrote meanwhile


def give_gil_away() -> None:
    # time.sleep(0) gives the GIL away, so another thread runs *between the read and the write*,
    # every time. Real code has such a gap too (a log line, a dict lookup that calls __hash__,
    # I/O); without one, CPython 3.10+ rarely switches here and the race hides instead of going.
    time.sleep(0)


def plain_python_gap() -> None:
    # No GIL given away: another thread runs here only if the switch interval ends in the gap.
    for _ in range(GAP_LOOPS):
        pass


def bump_unlocked(counter: Counter, n: int, line_up: traced.Barrier) -> None:
    line_up.wait(timeout=LINE_UP_TIMEOUT)  # all threads race from the first increment
    for _ in range(n):
        unsafe_increment(counter)


def bump_locked(counter: Counter, n: int, line_up: traced.Barrier, lock: traced.Lock) -> None:
    line_up.wait(timeout=LINE_UP_TIMEOUT)
    for _ in range(n):
        # The lock guards counter.value: its holder reads *and* writes before anyone else reads;
        # the others wait in the `with`. No timeout needed: a holder never blocks while holding.
        with lock:
            unsafe_increment(counter)


def bump_rlocked(counter: Counter, n: int, line_up: traced.Barrier, rlock: traced.RLock) -> None:
    line_up.wait(timeout=LINE_UP_TIMEOUT)
    for _ in range(n):
        with rlock:  # the outer operation holds the lock...
            add_one(counter, rlock)


def add_one(counter: Counter, rlock: traced.RLock) -> None:
    """A helper that is also called on its own, so it takes the lock itself."""
    with rlock:  # ...and takes it again: an RLock just counts 2, a Lock would wait for itself
        unsafe_increment(counter)


def race(log, label: str, target, threads: int, increments: int, *lock, gap=give_gil_away) -> int:
    """Run ``threads`` threads of ``target`` on a fresh counter; return its final value."""
    counter = Counter(gap)
    line_up = traced.Barrier(threads, name="line-up")  # releases them together once all arrive
    # Daemons: they hold nothing but this counter, and a stuck one must not keep the process alive.
    workers = [threading.Thread(target=target, name=f"{label}-{i}", daemon=True,
                                args=(counter, increments, line_up, *lock))
               for i in range(1, threads + 1)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    # Join while the counter moves: a fixed timeout would have to cover 16 x 10,000 locked
    # increments (~15 s); a deadlocked phase (exercise 2) shows in STALL seconds of no progress.
    while alive := [w for w in workers if w.is_alive()]:
        before = counter.value
        alive[0].join(timeout=STALL)
        if alive[0].is_alive() and counter.value == before:
            log.error("%s: no progress in %.0f s; %d threads stuck", label, STALL, len(alive))
            break
    expected = threads * increments
    log.info("%s: counter = %d, expected %d (%d lost) in %.0f ms", label.lower(), counter.value,
             expected, expected - counter.value, (time.perf_counter() - began) * 1000)
    return counter.value


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    expected = args.threads * args.increments
    log.info("%d threads x %d increments: the counter should end at %d",
             args.threads, args.increments, expected)

    if args.switch_interval > 0:  # 0 cannot be set (ValueError): it means "switch in every gap"
        sys.setswitchinterval(args.switch_interval)
    gap = plain_python_gap if args.switch_interval > 0 else give_gil_away
    unlocked = race(log, "Unlocked", bump_unlocked, args.threads, args.increments, gap=gap)
    if (lost := expected - unlocked) == 0:
        log.warning("no lost updates this time: the race is still there, it just did not show")
    if args.part == "unlocked":  # the race alone: few enough lines to schedule in step mode
        kit.emit_result(expected=expected, unlocked=unlocked, lost_updates=lost)
        return 0
    counter_lock = traced.Lock("counter-lock")  # guards one phase's counter; Locked-* wait on it
    locked = race(log, "Locked", bump_locked, args.threads, args.increments, counter_lock)
    counter_rlock = traced.RLock("counter-rlock")  # the same, but its owner may take it again
    rlocked = race(log, "RLocked", bump_rlocked, args.threads, args.increments, counter_rlock)
    # What an RLock saves us from: the owner of a plain Lock asks for it a second time. With a
    # timeout it is refused; without one (a bare `with lock:` in a helper) it would wait forever.
    with counter_lock:
        if reentered := counter_lock.acquire(timeout=SELF_WAIT):  # cannot happen with a Lock:
            counter_lock.release()  # if it did, release so that the `with` stays balanced
    log.info("a Lock asked again by its owner: %s after %.1f s; an RLock would say yes at once",
             "granted" if reentered else "refused", SELF_WAIT)
    kit.emit_result(expected=expected, unlocked=unlocked, locked=locked, rlocked=rlocked,
                    lost_updates=lost, plain_lock_reentered=int(reentered))
    return 0 if locked == rlocked == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())

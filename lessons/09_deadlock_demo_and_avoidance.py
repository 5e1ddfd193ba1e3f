"""Deadlock: two locks taken in opposite orders, and the ways out.

Problem:
    A transfer locks both accounts so nobody sees money half-moved. ``Transfer-AB`` locks A then B,
    ``Transfer-BA`` B then A: each holds what the other needs, a deadlock. A plain ``acquire()``
    waits forever; here it gives up after 1.5 s. Fixes: a *global lock order* (all sort the locks:
    no cycle can form) and *try-lock and back off* (if the second lock is taken, release the first,
    retry after one's own delay). Equal fixed delays make a *livelock*: both collide and retry in
    step forever, busy but going nowhere. Random back-off (``--seed`` replays it) breaks the tie.

What to watch:
    In the ``deadlock`` round both transfers show ``waiting-lock``, each holding one account; after
    ~0.3 s the kit logs "DEADLOCK detected" (a ``deadlock`` event). At the timeout one gives up its
    account, freeing the other. In ``livelock`` both log "backing off" every attempt, in step.

Expected output:
    ``Result:`` gives ``_deadlocked``, ``_finished``, ``_ms`` per strategy: deadlock 1, 0, ~1500;
    ordered, backoff, random_backoff 0, 1, < 500 ms; livelock 0, 0, ``_attempts`` at the cap.

Failure modes:
    Taking locks in whatever order the code needs deadlocks once two threads disagree; agree on one
    order (sort by name or id). An ``RLock`` does not help: it only lets *one* thread re-take its
    own lock. A bare ``acquire()`` makes a deadlock a silent hang: pass a timeout, report the
    failure. One fixed back-off everywhere trades the deadlock for a livelock; randomise it.

Exercises:
    1. Keep the livelock's equal back-off but start Transfer-BA's retry schedule 50 ms later: with
       ``--strategy livelock`` both get through. What does a lockstep need to last?
    2. In ``ordered``, let Transfer-BA sort the accounts in reverse: ``--strategy ordered`` makes
       the kit report a deadlock again. What must every thread agree on?
    3. Set ``RANDOM_MAX_S = 0.02`` (no more than ``UNDO_S``): ``--strategy random-backoff`` (seed 7)
       no longer gets through in 15 attempts. Why is a small random range not enough?
"""

from __future__ import annotations

import random
import threading
import time

from lessons import kit
from lessons.kit import traced  # drop-in twins of threading's locks that the dashboard can see

# Each strategy and the (deadlocked, finished) it must end with: demos show a problem, fixes finish.
STRATEGIES = {"deadlock": (1, 0), "ordered": (0, 1), "backoff": (0, 1), "livelock": (0, 0),
              "random-backoff": (0, 1)}
HOLD_S = 0.02  # work between the two locks: time for the other transfer to take its first lock
GIVE_UP_S = 1.5  # a patient wait: far past the kit's detector (a 0.3 s cycle, sampled every 0.1 s)
TRY_S = 0.01  # a try-lock's wait: two trying threads make a cycle too, but far shorter than 0.3 s
# A failed attempt undoes its half-done work still holding its first lock, so two attempts that
# start less than UNDO_S apart both find the other's first lock taken: the lockstep of a livelock.
UNDO_S = 0.02
BACKOFF_S = 0.03  # the fixed back-off; > UNDO_S, so in "backoff" the 1x and 2x delays fall apart
RANDOM_MAX_S = 0.1  # random back-off in [0, 0.1 s]: most draws put the retries > UNDO_S apart
START_TIMEOUT = 5.0  # seconds a transfer waits for the other at the start line; they arrive in ms


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--strategy", choices=("all", *STRATEGIES), default="all",
                        help="which way of taking the two locks to run (all: each in turn)")
    # 15 attempts of about 80 ms: the livelock plays for a second or so, then the cap ends it.
    parser.add_argument("--max-attempts", type=kit.int_range(2, 200), default=15,
                        help="attempt cap for the back-off strategies, so a livelock ends")
    parser.add_argument("--seed", type=kit.int_range(0, 1_000_000), default=7,
                        help="seed for the random back-off: the same seed gives the same delays")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def back_off_s(strategy: str, index: int, rng: random.Random) -> float:
    if strategy == "backoff":
        return BACKOFF_S * index  # each transfer its own delay, so their retries fall apart
    if strategy == "livelock":
        return BACKOFF_S  # the same delay for both: they retry in step, forever
    return rng.uniform(0, RANDOM_MAX_S)


def transfer(strategy, index, first, second, start, stop, args, outcome, log):
    rng = random.Random(args.seed + index)  # one per thread: the other's draws can't shift ours
    if strategy == "ordered":
        # The fix: one global order. Both take account-A first; the loser waits holding nothing.
        first, second = sorted((first, second), key=lambda lock: lock.name)
    patient = strategy in ("deadlock", "ordered")  # wait for the second lock; others try, back off
    limit = 1 if patient else args.max_attempts
    start.wait(timeout=START_TIMEOUT)  # both transfers begin at the same instant
    planned = time.monotonic()  # retries keep a schedule: a late wake-up can't break the lockstep
    attempt, finished, deadlocked = 0, False, False
    while attempt < limit and not stop.is_set():
        attempt += 1
        if not first.acquire(timeout=GIVE_UP_S):
            break
        try:
            time.sleep(HOLD_S)  # meanwhile the other transfer takes its first lock: a collision
            finished = second.acquire(timeout=GIVE_UP_S if patient else TRY_S)
            if finished:
                log.info("holding both accounts: moving the money (attempt %d)", attempt)
                second.release()
            elif patient:
                deadlocked = True
                log.error("DEADLOCK: no %s after %.1f s while I hold %s, which the other waits "
                          "for; giving up and releasing it", second.name, GIVE_UP_S, first.name)
            else:
                time.sleep(UNDO_S)
        finally:
            first.release()
        if finished or deadlocked or attempt == limit:
            break
        delay = back_off_s(strategy, index, rng)
        planned += HOLD_S + TRY_S + UNDO_S + delay  # this attempt's planned length + the back-off
        log.info("attempt %d: %s taken, backing off %d ms", attempt, second.name, delay * 1000)
        stop.wait(max(0.0, planned - time.monotonic()))  # a back-off Ctrl-C cuts short (lesson 07)
    if not (patient or finished):
        log.warning("no progress after %d attempts: a livelock; giving up at the cap", attempt)
    outcome[threading.current_thread().name] = (finished, deadlocked, attempt)  # our key only


def run_strategy(strategy: str, args, stop: threading.Event, log) -> dict[str, int]:
    a, b = traced.Lock("account-A"), traced.Lock("account-B")  # each guards one account's balance
    start = traced.Barrier(2, name="start-line")  # only the two transfers wait on it (traced: step
    # mode holds a thread at it, as at the locks, so a replayed schedule is exact)
    outcome: dict[str, tuple[bool, bool, int]] = {}
    routes = {"Transfer-AB": (a, b), "Transfer-BA": (b, a)}  # opposite orders: a deadlock recipe
    threads = [threading.Thread(target=transfer, name=name,
                                args=(strategy, index, *locks, start, stop, args, outcome, log))
               for index, (name, locks) in enumerate(routes.items(), 1)]
    log.info("--- %s ---", strategy)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    attempt_s = HOLD_S + TRY_S + UNDO_S + RANDOM_MAX_S  # the longest a back-off attempt takes
    for thread in threads:  # bounded by the slowest strategy, so a bug cannot hang us
        thread.join(timeout=START_TIMEOUT + 2 * GIVE_UP_S + args.max_attempts * attempt_s)
    ms = round((time.perf_counter() - began) * 1000)
    got = {"deadlocked": int(any(stuck for _, stuck, _ in outcome.values())),
           "finished": int(len(outcome) == 2 and all(done for done, _, _ in outcome.values())),
           "ms": ms, "attempts": max((n for _, _, n in outcome.values()), default=0)}
    log.info("%s: deadlocked=%d, finished=%d, %d ms, %d attempts", strategy, *got.values())
    return got


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    stop = threading.Event()  # set by Ctrl-C / Stop; checked each attempt; back-offs wait on it
    kit.cancel_on_interrupt(stop)
    values, as_taught = {}, True
    for strategy in STRATEGIES if args.strategy == "all" else (args.strategy,):
        if stop.is_set():
            break
        got = run_strategy(strategy, args, stop, log)
        values.update({f"{strategy.replace('-', '_')}_{k}": v for k, v in got.items()})
        as_taught &= (got["deadlocked"], got["finished"]) == STRATEGIES[strategy]
    kit.emit_result(**values)
    return 0 if as_taught or stop.is_set() else 1


if __name__ == "__main__":
    raise SystemExit(main())

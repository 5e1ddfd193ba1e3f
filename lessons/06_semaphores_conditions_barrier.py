"""Semaphores, conditions and barriers: limit a resource, hand work over, move in lock-step.

Problem:
    A ``Semaphore`` counts permits: 8 clients share 3 connections; a 4th waits for one to come back.
    A ``Condition`` lets a thread sleep until a fact about shared state holds ("there is room"):
    here a bounded buffer built by hand, like ``queue.Queue`` (whose three conditions, not_empty,
    not_full and all_tasks_done for ``join()``, share one lock). A ``Barrier`` makes a team finish
    step N before anyone starts N+1; ``abort()`` breaks it: the others get ``BrokenBarrierError``.

What to watch:
    Clients log at most ``(3/3 in use)``; the rest wait on ``connections``, unfairly: who releases
    and asks again often wins. Consumers wait on ``not-empty`` (they start first), the producer on
    ``not-full``. ``Slice-N`` threads reach each barrier one by one and leave together.

Expected output:
    observed_max = limit = 3, pool_ms ~ 330, sent = received = 20, phases_completed = 3,
    barrier_broken = 1, broken_waits = 2, broken_wait_ms ~ 40: the last slice aborts an extra step.

Failure modes:
    A ``Lock`` lets one client in, not three; a counter checked outside a lock lets a fourth in.
    Use a ``BoundedSemaphore``: a plain one released too often quietly grows. Polling with ``sleep``
    is slow; a ``wait()`` under an ``if`` may wake to nothing (``notify_all()``, or a faster thread
    took it): use ``wait_for(predicate, timeout)``. A barrier without a timeout hangs the team.

Exercises:
    1. Make the pool act as a ``Lock``: choose ``--connections`` so one client is in at a time
       (observed_max = 1) and the client phase (``pool_ms``) takes about 3x longer.
    2. With ``--waiter if --consumers 4 --buffer-size 1``, make ``put`` wake all consumers
       (``notify_all()``): a consumer woken to an empty buffer crashes with ``IndexError``.
    3. Make the last slice sleep ``BARRIER_TIMEOUT * 1.5`` instead of ``return barrier.abort()``:
       all 3 slices see ``BrokenBarrierError``, the waiting ones after ``BARRIER_TIMEOUT``.
"""

from __future__ import annotations

import collections
import threading
import time

from lessons import kit
from lessons.kit import traced  # drop-in twins of threading's primitives that the dashboard sees

TIMEOUT = 5.0  # seconds before any wait gives up: over 10x the longest wait in a healthy run
BARRIER_TIMEOUT = 1.0  # seconds: far above the spread of arrivals (16 slices: 320 ms), yet quick


def build_parser():
    parser = kit.lesson_parser(__doc__)
    add = parser.add_argument
    add("--clients", type=kit.int_range(1, 32), default=8, help="client threads")
    add("--connections", type=kit.int_range(1, 16), default=3, help="semaphore permits")
    add("--queries", type=kit.int_range(1, 100), default=3, help="queries per client")
    add("--query-ms", type=kit.int_range(0, 1000), default=40, help="ms per query")
    add("--items", type=kit.int_range(0, 10_000), default=20, help="items to hand over")
    add("--buffer-size", type=kit.int_range(1, 100), default=2, help="2: the producer must wait")
    add("--consumers", type=kit.int_range(1, 16), default=2, help="consumer threads")
    add("--parties", type=kit.int_range(2, 16), default=3, help="threads at the barrier")
    add("--phases", type=kit.int_range(1, 50), default=3, help="lock-step phases")
    add("--waiter", choices=("wait_for", "if"), default="wait_for", help="if: checks once (a bug)")
    add("--part", choices=("all", "buffer"), default="all", help="buffer: the hand-over alone")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def client(pool, gauge: dict, gauge_lock, start_line: threading.Barrier, args, log) -> None:
    start_line.wait(timeout=TIMEOUT)  # all clients ask at once, so the pool surely fills up
    for query in range(1, args.queries + 1):
        if not pool.acquire(timeout=TIMEOUT):
            raise TimeoutError("no connection within the timeout: is a client stuck holding one?")
        try:
            with gauge_lock:  # count in after acquiring, out before releasing: never over-counts
                in_use = gauge["now"] = gauge["now"] + 1
                gauge["peak"] = max(gauge["peak"], in_use)
            log.info("query %d on a connection (%d/%d in use)", query, in_use, args.connections)
            time.sleep(args.query_ms / 1000)  # stands for the database doing the work
        finally:
            with gauge_lock:
                gauge["now"] -= 1
            pool.release()


class BoundedBuffer:
    """``queue.Queue`` by hand, as in CPython's Lib/queue.py, without ``join()``'s condition."""
    def __init__(self, capacity: int, waiter: str = "wait_for") -> None:
        self.items, self.capacity, self.waiter = collections.deque(), capacity, waiter
        lock = traced.Lock("buffer")  # guards items; both conditions below share it
        self.not_full = traced.Condition(lock, name="not-full")  # the producer waits here for room
        self.not_empty = traced.Condition(lock, name="not-empty")  # consumers wait for an item

    def put(self, item: int | None, timeout: float) -> None:
        with self.not_full:
            if not self.not_full.wait_for(lambda: len(self.items) < self.capacity, timeout):
                raise TimeoutError("no room: are the consumers stuck?")
            self.items.append(item)
            self.not_empty.notify()  # one new item: wake one consumer, not all of them

    def get(self, timeout: float) -> int | None:
        with self.not_empty:
            if self.waiter == "if":  # the bug: it looks before it waits, never after it wakes
                if not self.items:
                    self.not_empty.wait(timeout)
            # wait_for re-checks after every wake-up: another consumer may have been faster.
            elif not self.not_empty.wait_for(lambda: self.items, timeout):
                raise TimeoutError("no item: is the producer stuck?")
            self.not_full.notify()
            return self.items.popleft()


def producer(buffer: BoundedBuffer, args, counts: dict, log) -> None:
    for item in range(1, args.items + 1):
        time.sleep(0.002)  # making an item takes 2 ms, using one 10 ms: the buffer fills up
        buffer.put(item, TIMEOUT)
        counts["sent"] += 1  # only the producer writes this key
        log.info("put item %d (%d/%d)", item, len(buffer.items), buffer.capacity)
    for _ in range(args.consumers):
        buffer.put(None, TIMEOUT)  # one sentinel per consumer, after every item (lesson 03)


def consumer(buffer: BoundedBuffer, counts: dict, log) -> None:
    me = threading.current_thread().name
    while (item := buffer.get(TIMEOUT)) is not None:
        counts[me] = counts.get(me, 0) + 1  # only this thread writes its own key
        log.info("got item %d", item)
        time.sleep(0.01)  # stands for the work an item needs


def slice_worker(barrier: threading.Barrier, n: int, args, done: list, broken: dict, log) -> None:
    for step in range(1, args.phases + 2):  # one extra, last step: the one that fails
        time.sleep(n * 0.02)  # Slice-N works N x 20 ms, so the slices reach the barrier one by one
        if step > args.phases and n == args.parties:  # the last to arrive fails the extra step
            log.warning("step %d failed here; abort() so the others stop waiting", step)
            return barrier.abort()
        began = time.perf_counter()
        try:
            if barrier.wait(timeout=BARRIER_TIMEOUT) == 0:  # exactly one slice per step gets 0
                done.append(step)
                log.info("all %d slices arrived: step %d done", args.parties, step)
        except threading.BrokenBarrierError:
            broken[n] = round((time.perf_counter() - began) * 1000)  # one key per thread
            return log.warning("step %d: barrier broken; stopping, not waiting forever", step)


def run_all(threads: list[threading.Thread]) -> int:  # -> ms from first start to last join
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)  # a healthy run needs well under a second
    return round((time.perf_counter() - began) * 1000)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    if args.part == "all":  # --part buffer skips to the hand-over: few lines to step through
        # Bounded: an extra release() raises ValueError instead of quietly adding a 4th connection.
        pool = traced.BoundedSemaphore(args.connections, name="connections")
        gauge = {"now": 0, "peak": 0}  # clients holding a connection: now, and the most at once
        gauge_lock = traced.Lock("gauge")  # guards gauge; held for one update, never while waiting
        start_line = threading.Barrier(args.clients)  # lines the clients up (barriers: below)
        pool_ms = run_all([threading.Thread(target=client, name=f"Client-{i}",
                                            args=(pool, gauge, gauge_lock, start_line, args, log))
                           for i in range(1, args.clients + 1)])
    buffer, counts = BoundedBuffer(args.buffer_size, args.waiter), {"sent": 0}
    # Consumers first: all of them wait on the empty buffer when the first item arrives.
    run_all([*[threading.Thread(target=consumer, name=f"Consumer-{i}", args=(buffer, counts, log))
               for i in range(1, args.consumers + 1)],
             threading.Thread(target=producer, name="Producer", args=(buffer, args, counts, log))])
    received = sum(n for name, n in counts.items() if name != "sent")
    if args.part == "buffer":
        kit.emit_result(sent=counts["sent"], received=received)
        return 0 if counts["sent"] == received == args.items else 1
    barrier = threading.Barrier(args.parties)
    done, broken = [], {}  # steps all slices finished; slice → ms it waited for a broken barrier
    run_all([threading.Thread(target=slice_worker, name=f"Slice-{i}",
                              args=(barrier, i, args, done, broken, log))
             for i in range(1, args.parties + 1)])
    kit.emit_result(limit=args.connections, observed_max=gauge["peak"], pool_ms=pool_ms,
                    sent=counts["sent"], received=received, phases_completed=len(done),
                    barrier_broken=int(barrier.broken), broken_waits=len(broken),
                    broken_wait_ms=max(broken.values(), default=0))
    ok = gauge["peak"] <= args.connections and counts["sent"] == received == args.items
    return 0 if ok and len(done) == args.phases else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Semaphores, conditions and barriers: limit a resource, hand work over, move in lock-step.

Problem:
    A ``Semaphore`` counts permits: 8 clients share 3 connections; a 4th waits for one to come back.
    A ``Condition`` lets a thread sleep until a fact about shared state holds ("there is room"):
    here a bounded buffer built by hand, as ``queue.Queue`` is. A ``Barrier`` makes a team finish
    step N before anyone starts N+1; ``abort()`` breaks it: the others get ``BrokenBarrierError``.

What to watch:
    Clients log at most ``(3/3 in use)``; the rest wait on ``connections``, unfairly: who releases
    and asks again often wins. The producer waits on ``not-full``, consumers on ``not-empty``.
    ``Slice-N`` threads reach each barrier one by one and leave together, until the last one aborts.

Expected output:
    observed_max = limit = 3, sent = received = 20, phases_completed = 3, barrier_broken = 1 and
    broken_waits = 2: the last slice failed an extra step, and both others saw the break.

Failure modes:
    A ``Lock`` lets one client in, not three; a counter checked outside a lock lets a fourth in.
    Use a ``BoundedSemaphore``: a plain one released too often quietly grows. Polling with ``sleep``
    is slow; a bare ``wait()`` may wake to a stolen item: use ``wait_for(predicate, timeout)``.
    A barrier without a timeout hangs the team when a member dies.

Exercises:
    1. Run ``--connections 1``, then ``--connections 8``: how do run time and observed_max change?
       Which of them would a ``Lock`` give you?
    2. In ``BoundedBuffer.get``, replace ``wait_for`` with one ``wait()`` under an ``if``; run
       ``--consumers 4 --buffer-size 1 --items 200``: why does a consumer die of ``IndexError``?
    3. Make the last slice sleep ``BARRIER_TIMEOUT * 1.5`` instead of calling ``abort()``: who sees
       ``BrokenBarrierError`` now, and after how long? Then try ``barrier.reset()`` and a retry.
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
    add("--buffer-size", type=kit.int_range(1, 100), default=2,
        help="buffer capacity: 2 is small enough that the producer must wait")
    add("--consumers", type=kit.int_range(1, 16), default=2, help="consumer threads")
    add("--parties", type=kit.int_range(2, 16), default=3, help="threads at the barrier")
    add("--phases", type=kit.int_range(1, 50), default=3, help="lock-step phases")
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
    """A hand-made ``queue.Queue``: one lock, two conditions on it, as in CPython's Lib/queue.py."""

    def __init__(self, capacity: int) -> None:
        self.items, self.capacity = collections.deque(), capacity
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
            # wait_for re-checks after every wake-up: another consumer may have been faster.
            if not self.not_empty.wait_for(lambda: self.items, timeout):
                raise TimeoutError("no item: is the producer stuck?")
            self.not_full.notify()
            return self.items.popleft()


def producer(buffer: BoundedBuffer, args, counts: dict, log) -> None:
    for item in range(1, args.items + 1):
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
        time.sleep(0.01)  # slower than the producer (who does not sleep): the buffer fills up


def slice_worker(barrier: threading.Barrier, n: int, args, done: list, broken: dict, log) -> None:
    for step in range(1, args.phases + 2):  # one extra, last step: the one that fails
        time.sleep(n * 0.02)  # Slice-N works N x 20 ms, so the slices reach the barrier one by one
        if step > args.phases and n == args.parties:  # the last to arrive fails the extra step
            log.warning("step %d failed here; abort() so the others stop waiting", step)
            return barrier.abort()
        try:
            if barrier.wait(timeout=BARRIER_TIMEOUT) == 0:  # exactly one slice per step gets 0
                done.append(step)
                log.info("all %d slices arrived: step %d done", args.parties, step)
        except threading.BrokenBarrierError:
            broken[n] = step  # one key per thread
            log.warning("step %d: barrier broken; stopping instead of waiting forever", step)
            return


def run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)  # a healthy run needs well under a second


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    # Bounded: an extra release() raises ValueError instead of quietly adding a fourth connection.
    pool = traced.BoundedSemaphore(args.connections, name="connections")
    gauge = {"now": 0, "peak": 0}  # clients holding a connection: now, and the most at once
    gauge_lock = traced.Lock("gauge")  # guards gauge; held for one update, never while waiting
    start_line = threading.Barrier(args.clients)  # lines the clients up (more on barriers below)
    run_all([threading.Thread(target=client, name=f"Client-{i}",
                              args=(pool, gauge, gauge_lock, start_line, args, log))
             for i in range(1, args.clients + 1)])

    buffer, counts = BoundedBuffer(args.buffer_size), {"sent": 0}
    run_all([threading.Thread(target=producer, name="Producer", args=(buffer, args, counts, log)),
             *[threading.Thread(target=consumer, name=f"Consumer-{i}", args=(buffer, counts, log))
               for i in range(1, args.consumers + 1)]])
    received = sum(n for name, n in counts.items() if name != "sent")

    barrier = threading.Barrier(args.parties)
    done: list[int] = []  # steps every slice finished; one slice per step appends
    broken: dict[int, int] = {}  # slice → the step in which it saw the barrier broken
    run_all([threading.Thread(target=slice_worker, name=f"Slice-{i}",
                              args=(barrier, i, args, done, broken, log))
             for i in range(1, args.parties + 1)])

    kit.emit_result(limit=args.connections, observed_max=gauge["peak"], sent=counts["sent"],
                    received=received, phases_completed=len(done),
                    barrier_broken=int(barrier.broken), broken_waits=len(broken))
    ok = gauge["peak"] <= args.connections and counts["sent"] == received == args.items
    return 0 if ok and len(done) == args.phases else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Producer/consumer: threads handing work over a bounded queue.

Problem:
    Producers make items faster or slower than consumers can handle them. A ``queue.Queue`` is the
    thread-safe hand-over: ``put`` and ``get`` do their own locking, and a *bounded* queue
    (``maxsize``) pushes back on producers when consumers fall behind, so memory stays flat.
    At the end we stop producing, let the consumers drain what is left, and stop them with one
    sentinel (``None``) each: nothing is lost and nothing hangs.

What to watch:
    The log shows each put and get with the queue's fill level. In the thread table, producers
    sit in ``waiting-queue`` while the queue is full (back-pressure) and consumers sit in
    ``waiting-queue`` when it is empty. Raise ``--producers`` and the queue stays full; raise
    ``--consumers`` and it stays empty.

Expected output:
    Producers and consumers log interleaved lines for ``--duration`` seconds, then
    ``Result: produced = N, consumed = N, left = 0`` with N > 0.

Failure modes:
    A plain ``list`` with ``append``/``pop`` looks like it works but needs its own lock and a
    busy-wait when empty; use ``queue.Queue``. An unbounded queue hides a slow consumer until memory
    runs out; give it a ``maxsize``. Stopping consumers with a flag instead of a sentinel can leave
    items behind or leave a consumer blocked in ``get()`` forever; ``get(timeout=...)`` plus a
    sentinel per consumer ends them exactly when the queue is drained.

Exercises:
    1. Run with ``--queue-size 1 --producers 4`` and watch producers wait on a full queue; then
       ``--consumers 1 --consume-ms 50`` and explain the numbers in the result.
    2. Replace the sentinel shutdown with ``queue.task_done()`` / ``queue.join()`` in the main thread;
       what must consumers do for ``join()`` to return?
    3. Give each item a priority and switch to ``queue.PriorityQueue``; what must the sentinel's
       priority be so consumers still drain every real item first?
"""

from __future__ import annotations

import itertools
import queue
import threading
import time

from lessons import kit

SENTINEL = None  # one per consumer: "no more items"; a consumer that gets it stops
PUT_TIMEOUT = 1.0  # seconds a producer waits for space before re-checking the stop flag


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--producers", type=kit.int_range(1, 16), default=2, help="producer threads")
    parser.add_argument("--consumers", type=kit.int_range(1, 16), default=2, help="consumer threads")
    parser.add_argument("--duration", type=kit.float_range(0.1, 600), default=2.0,
                        help="seconds to keep producing")
    parser.add_argument("--queue-size", type=kit.int_range(1, 1000), default=5,
                        help="queue capacity: a full queue makes producers wait (back-pressure)")
    parser.add_argument("--produce-ms", type=kit.int_range(0, 1000), default=20,
                        help="milliseconds to make one item")
    parser.add_argument("--consume-ms", type=kit.int_range(0, 1000), default=30,
                        help="milliseconds to handle one item")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def producer(items: queue.Queue, stop: threading.Event, numbers, produce_s: float, counts: dict, log):
    me = threading.current_thread().name
    while not stop.is_set():
        time.sleep(produce_s)  # stands for real work: reading a file, a socket...
        item = next(numbers)  # itertools.count is thread-safe in CPython: one C call per number
        try:
            # A timeout, so a producer blocked on a full queue still notices `stop`.
            items.put(item, timeout=PUT_TIMEOUT)
        except queue.Full:
            continue
        counts[me] = counts.get(me, 0) + 1  # only this thread writes its own key
        log.info("put item %d (queue %d/%d)", item, items.qsize(), items.maxsize)


def consumer(items: queue.Queue, consume_s: float, counts: dict, log):
    me = threading.current_thread().name
    while True:
        item = items.get(timeout=10)  # a timeout so a bug cannot hang us forever
        if item is SENTINEL:
            log.info("got the sentinel: queue drained, stopping")
            return
        time.sleep(consume_s)
        counts[me] = counts.get(me, 0) + 1
        log.info("got item %d (queue %d/%d)", item, items.qsize(), items.maxsize)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    items: queue.Queue = queue.Queue(maxsize=args.queue_size)
    stop = threading.Event()  # set when producing should end: by the clock or by Ctrl-C
    kit.cancel_on_interrupt(stop)
    produced: dict[str, int] = {}
    consumed: dict[str, int] = {}
    numbers = itertools.count(1)

    producers = [threading.Thread(target=producer, name=f"Producer-{i}",
                                  args=(items, stop, numbers, args.produce_ms / 1000, produced, log))
                 for i in range(1, args.producers + 1)]
    consumers = [threading.Thread(target=consumer, name=f"Consumer-{i}",
                                  args=(items, args.consume_ms / 1000, consumed, log))
                 for i in range(1, args.consumers + 1)]
    for thread in producers + consumers:
        thread.start()
    log.info("started %d producers and %d consumers; producing for %.1fs",
             len(producers), len(consumers), args.duration)

    stop.wait(args.duration)  # returns early if Ctrl-C set it
    stop.set()
    for thread in producers:
        thread.join(timeout=PUT_TIMEOUT + 1)
    # Producers are done, so every real item is already in the queue, ahead of the sentinels.
    for _ in consumers:
        items.put(SENTINEL, timeout=10)
    for thread in consumers:
        thread.join(timeout=10)

    total_produced, total_consumed = sum(produced.values()), sum(consumed.values())
    log.info("produced %d, consumed %d", total_produced, total_consumed)
    kit.emit_result(produced=total_produced, consumed=total_consumed, left=items.qsize())
    return 0 if total_produced == total_consumed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Producer/consumer: threads handing work over a bounded queue.

Problem:
    Producers make items faster or slower than consumers can handle them. A ``queue.Queue`` is the
    thread-safe hand-over: ``put`` and ``get`` do their own locking, and a *bounded* queue
    (``maxsize``) pushes back on producers when consumers fall behind, so memory stays flat.
    At the end we stop producing, let the consumers drain what is left, and stop them with one
    sentinel (``None``) each: nothing is lost and nothing hangs. ``--stages N`` puts N stages of
    workers in between (a pipeline, a bounded queue before each), stopped stage by stage alike.

What to watch:
    The log shows each put and get with the queue's fill level. Each queue is named for its
    readers (``stage1_queue``, ..., ``consumer_queue``), and the thread table's "Waiting for" says
    which one a thread waits on: producers wait while it is full (back-pressure), readers while it
    is empty. The queue before the slowest step stays full, the queues after it nearly empty.

Expected output:
    Producers and consumers log interleaved lines for ``--duration`` seconds, then ``Result:
    produced = N, consumed = N, left = 0, stranded = 0`` with N > 0; with ``--stages 2`` also
    ``stage_1 = N`` and ``stage_2 = N``: every stage handled every item. ``<queue>_fill`` is how
    full each queue was on average (% of ``--queue-size``); exercise 2 explains ``unfinished``.

Failure modes:
    A plain ``list`` with ``append``/``pop`` seems to work but needs its own lock and a busy-wait
    when empty; use ``queue.Queue``. An unbounded queue hides a slow consumer until memory runs out;
    give it a ``maxsize``. A stop flag (``--stop-with flag``: stop once it is set and the queue is
    empty) seems to work, but a consumer that looked before it was set waits in ``get()`` for ever
    (``stranded``): send one sentinel per consumer. Stage workers passing sentinels on send the
    next stage the wrong number, with items behind them; let main send them once a stage is joined.

Exercises:
    1. Run ``--stages 2 --step-ms 80`` and find the slow step in the thread table (who waits on
       which queue). Then, keeping ``--step-ms 80`` and the consumers as they are, add workers
       until the consumers are the slowest step again: ``consumer_queue_fill`` at least 60.
    2. ``unfinished`` counts items put but never marked done: what ``queue.join()`` waits for.
       Make every reader call ``inbox.task_done()`` once per ``get()`` (the sentinel's too) so
       that it ends at 0. Why would a ``queues[-1].join()`` in ``main`` hang without it?
    3. Make ``worker`` put its sentinel on ``outbox`` (when it has one) before returning, and have
       ``main`` send sentinels only into the first queue. Run ``--stages 1 --stage-workers 4
       --consumers 1 --consume-ms 0 --queue-size 10``: why is ``left`` no longer 0?
"""

from __future__ import annotations

import itertools
import queue
import threading
import time

from lessons import kit
from lessons.kit import traced

SENTINEL = None  # "no more items": one per reader of a queue; a reader that gets it stops
PUT_TIMEOUT = 1.0  # seconds a producer waits for space before re-checking the stop flag
HAND_OVER_TIMEOUT = 10  # seconds any other get/put/join may block: only a bug takes that long
SAMPLE_S = 0.05  # how often main samples each queue's fill level


def build_parser():
    parser = kit.lesson_parser(__doc__)
    add = parser.add_argument
    add("--producers", type=kit.int_range(1, 16), default=2, help="producer threads")
    add("--consumers", type=kit.int_range(1, 16), default=2, help="consumer threads")
    add("--duration", type=kit.float_range(0.1, 600), default=2.0, help="seconds to keep producing")
    add("--queue-size", type=kit.int_range(1, 1000), default=5,
        help="capacity of every queue: a full queue makes its writers wait (back-pressure)")
    add("--produce-ms", type=kit.int_range(0, 1000), default=20, help="ms to make one item")
    add("--consume-ms", type=kit.int_range(0, 1000), default=30, help="ms to handle one item")
    add("--stages", type=kit.int_range(0, 5), default=0,
        help="stages of workers between producers and consumers (0: a single queue)")
    add("--stage-workers", type=kit.int_range(1, 8), default=2, help="worker threads in each stage")
    # 15 is half of --consume-ms: by default the consumers stay the slowest step, as with no stages.
    add("--step-ms", type=kit.int_range(0, 1000), default=15, help="ms per item for a stage worker")
    add("--items", type=kit.int_range(0, 1000), default=0, help="make N items (0: for --duration)")
    add("--stop-with", choices=("sentinel", "flag"), default="sentinel",
        help="how readers learn of the end: a sentinel each, or a flag (a failure mode)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def producer(items: queue.Queue, stop: threading.Event, numbers, produce_s: float,
             counts: dict, log):
    me = threading.current_thread().name
    for item in numbers:  # shared; one C call per number, so thread-safe in CPython
        if stop.is_set():
            return
        time.sleep(produce_s)  # stands for real work: reading a file, a socket...
        try:
            items.put(item, timeout=PUT_TIMEOUT)  # so a producer on a full queue still sees `stop`
        except queue.Full:
            continue
        counts[me] = counts.get(me, 0) + 1  # only this thread writes its own key
        log.info("put item %d (queue %d/%d)", item, items.qsize(), items.maxsize)


def worker(inbox: queue.Queue, outbox: queue.Queue | None, work_s: float, counts: dict, log,
           flag: threading.Event | None, stranded: list):
    """A stage worker hands each item on to ``outbox``; a consumer (no outbox) is the last step.
    With a ``flag`` (``--stop-with flag``) it stops once the flag is set and ``inbox`` is empty."""
    me = threading.current_thread().name
    while not (flag is not None and flag.is_set() and inbox.empty()):
        try:
            item = inbox.get(timeout=HAND_OVER_TIMEOUT)  # a timeout so a bug cannot hang us forever
        except queue.Empty:  # a bug: nothing came, not even a sentinel (a flag: see Failure modes)
            log.error("stranded: no item and no sentinel in %d s", HAND_OVER_TIMEOUT)
            stranded.append(me)  # list.append is thread-safe
            return
        if item is SENTINEL:
            # Not passed on: the next stage may have more readers than we have workers (some never
            # stop) or fewer (extra sentinels strand the items siblings put behind them), and busy
            # siblings could put items behind any we send. main() sends them once we are all joined.
            log.info("got the sentinel: queue drained, stopping")
            return
        time.sleep(work_s)  # stands for real work: parsing, resizing, storing...
        if outbox is not None:
            outbox.put(item, timeout=HAND_OVER_TIMEOUT)  # waits while the next stage is behind
        counts[me] = counts.get(me, 0) + 1
        log.info("got item %d (queue %d/%d)", item, inbox.qsize(), inbox.maxsize)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    # queues[0] is written by the producers, queues[k] by stage k, and the consumers read the last.
    # Every one is bounded, so a slow step pushes back on every step before it. The kit's traced
    # Queue is queue.Queue with a name: the thread table shows which queue a thread waits on.
    names = [f"stage{s}_queue" for s in range(1, args.stages + 1)] + ["consumer_queue"]
    queues = [traced.Queue(args.queue_size, name=name) for name in names]
    stop = threading.Event()  # set when producing should end: by the clock or by Ctrl-C
    kit.cancel_on_interrupt(stop)
    produced: dict[str, int] = {}
    consumed: dict[str, int] = {}
    handled: list[dict[str, int]] = [{} for _ in range(args.stages)]  # one per stage
    numbers = iter(range(1, args.items + 1)) if args.items else itertools.count(1)
    stranded: list[str] = []  # readers that gave up waiting: nothing came, not even a sentinel
    ends = {"flag": stop if args.stop_with == "flag" else None, "stranded": stranded}

    producers = [threading.Thread(target=producer, name=f"Producer-{i}",
                                  args=(queues[0], stop, numbers, args.produce_ms / 1000,
                                        produced, log))
                 for i in range(1, args.producers + 1)]
    # readers[k] are the threads reading queues[k]: each stage in turn, then the consumers.
    readers = [[threading.Thread(target=worker, name=f"Stage{s}-Worker-{i}", kwargs=ends,
                                 args=(queues[s - 1], queues[s], args.step_ms / 1000, counts, log))
                for i in range(1, args.stage_workers + 1)]
               for s, counts in enumerate(handled, start=1)]
    readers.append([threading.Thread(target=worker, name=f"Consumer-{i}", kwargs=ends,
                                     args=(queues[-1], None, args.consume_ms / 1000, consumed, log))
                    for i in range(1, args.consumers + 1)])
    for thread in producers + [thread for group in readers for thread in group]:
        thread.start()
    log.info("started %d producers, %d consumers and %d stage workers; producing %s",
             len(producers), args.consumers, args.stages * args.stage_workers,
             f"{args.items} items" if args.items else f"for {args.duration:.1f}s")

    # Sample how full each queue is while producing; stop.wait returns early if Ctrl-C set it.
    phase = 0 if args.items else args.duration  # --items (step mode's level): no timed phase
    fill, samples, end = {q.name: 0.0 for q in queues}, 0, time.monotonic() + phase
    while (remaining := end - time.monotonic()) > 0 and not stop.wait(min(SAMPLE_S, remaining)):
        samples += 1
        fill = {q.name: fill[q.name] + q.qsize() / q.maxsize for q in queues}
    if not args.items:  # with --items they stop by themselves; `stop` (the flag) waits for them
        stop.set()
    for thread in producers:
        thread.join(timeout=HAND_OVER_TIMEOUT if args.items else PUT_TIMEOUT + 1)
    stop.set()
    # Stage by stage: once every writer of a queue is joined, all its real items are in it, ahead
    # of the sentinels put now, and one sentinel per reader stops each reader exactly once.
    for inbox, group in zip(queues, readers, strict=True):
        for _ in group if args.stop_with == "sentinel" else ():  # a flag: `stop`, set above
            inbox.put(SENTINEL, timeout=HAND_OVER_TIMEOUT)
        for thread in group:  # longer than a reader's get(): a stranded one is counted first
            thread.join(timeout=HAND_OVER_TIMEOUT + 1)

    total_produced, total_consumed = sum(produced.values()), sum(consumed.values())
    stages = {f"stage_{s}": sum(counts.values()) for s, counts in enumerate(handled, start=1)}
    log.info("produced %d, consumed %d", total_produced, total_consumed)
    fills = {f"{name}_fill": round(100 * f / max(samples, 1)) for name, f in fill.items()}
    kit.emit_result(produced=total_produced, **stages, consumed=total_consumed,
                    left=sum(q.qsize() for q in queues), **fills,
                    unfinished=sum(q.unfinished_tasks for q in queues), stranded=len(stranded))
    ok = not stranded and all(n == total_produced for n in [*stages.values(), total_consumed])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Threads and asyncio: crossing the border between an event loop and threads, both ways.

Problem:
    An event loop runs all its coroutines in one thread, switching only at ``await``: one blocking
    call (``time.sleep``, a slow read) freezes them all. Blocking work goes out to a thread
    (``asyncio.to_thread``, ``loop.run_in_executor``); threads hand work back in
    (``loop.call_soon_threadsafe``, ``asyncio.run_coroutine_threadsafe``).

What to watch:
    ``MainThread`` (the loop's thread) logs "blocking for 250 ms", then ``Offload_0`` (an executor
    thread) does: a ticker coroutine wakes about 250 ms late, then on time. ``Feeder-N`` threads
    fill an ``asyncio.Queue`` and ask the loop a question; ``MainThread`` logs every item it drains.

Expected output:
    ``max_lag_blocking_ms`` near ``--block-ms`` (about 230-250), ``max_lag_offloaded_ms`` a few ms,
    ``items_from_threads = items_consumed = 30``, ``answers = 3``, ``max_handoff_ms`` below 50.

Failure modes:
    ``time.sleep`` in a coroutine stalls the whole loop: use ``asyncio.sleep`` or ``to_thread``.
    asyncio objects (loop, queues, events, futures) are not thread-safe: ``queue.put_nowait`` or
    ``loop.call_soon`` from another thread does not even wake the loop; only ``*_threadsafe`` calls
    may cross (``--asyncio-debug`` catches such a call: it raises in the calling thread). In the
    loop's thread, ``run_coroutine_threadsafe(...).result()`` deadlocks on itself.

Exercises:
    1. Run with ``--block-ms 1000 --asyncio-debug``: the lag follows the block (800 ms or more),
       and asyncio's debug mode logs the culprit ("Executing <Task ...> took 1.0 seconds").
    2. In ``feeder``, replace ``loop.call_soon_threadsafe(items.put_nowait, item)`` with
       ``items.put_nowait(item)`` and run with ``--feed-ms 50``: ``max_handoff_ms`` passes 250, as
       nothing wakes the loop until a feeder asks its question.
    3. At the end of ``consume``, ask the loop the way a feeder does, but from the loop's thread:
       ``asyncio.run_coroutine_threadsafe(consumed_so_far(stats), asyncio.get_running_loop())``
       then ``.result(timeout=1)`` on what it returns. The run fails with ``TimeoutError``: the
       loop's thread waits for itself. (Without the timeout it would hang.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lessons import kit

SENTINEL = None  # one per feeder, after its last item: "no more from me"
SETTLE_TICKS = 3  # ticks before and after the blocking call: the ticker's on-time baseline
GET_TIMEOUT = 5.0  # seconds the consumer waits for one item: only a bug takes this long
ANSWER_TIMEOUT = 2.0  # seconds a feeder waits for the loop's answer; an idle loop answers in < 1 ms
JOIN_TIMEOUT = 5.0  # seconds to wait for a feeder to end after its sentinel (it is already done)


def build_parser():
    parser = kit.lesson_parser(__doc__)
    for flag, low, high, default, text in (
        ("--block-ms", 50, 5000, 250, "ms of the blocking call: long enough to dwarf normal lag"),
        ("--tick-ms", 1, 1000, 20, "how often the ticker coroutine wants to wake up"),
        ("--feeders", 1, 16, 3, "plain threads handing items into the loop"),
        ("--items", 1, 1000, 10, "items each feeder hands over"),
        ("--feed-ms", 0, 1000, 20, "ms a feeder works on one item before handing it over"),
    ):
        parser.add_argument(flag, type=kit.int_range(low, high), default=default, help=text)
    parser.add_argument("--asyncio-debug", action="store_true",
                        help="asyncio debug mode: slow callbacks and wrong-thread calls reported")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def blocking_call(seconds: float, log) -> None:
    log.info("blocking for %d ms", seconds * 1000)
    time.sleep(seconds)  # stands for any call that blocks: a file, a socket, a C library


async def ticker(tick_s: float, done: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not done.is_set():
        due = loop.time() + tick_s
        await asyncio.sleep(tick_s)
        lags.append(loop.time() - due)  # how late the loop got back to us


async def measure_lag(how: str, block_s: float, tick_s: float, log) -> float:
    done = asyncio.Event()  # set when the measurement is over; the ticker checks it each tick
    lags: list[float] = []
    tick = asyncio.create_task(ticker(tick_s, done, lags))
    await asyncio.sleep(SETTLE_TICKS * tick_s)
    if how == "offloaded":
        await asyncio.to_thread(blocking_call, block_s, log)  # the loop keeps serving the ticker
    else:
        blocking_call(block_s, log)  # WRONG on purpose: no coroutine runs until this returns
    await asyncio.sleep(SETTLE_TICKS * tick_s)
    done.set()
    await asyncio.wait_for(tick, timeout=tick_s + 1)  # the ticker ends within one tick
    log.info("%s: the ticker woke up at most %.0f ms late", how, max(lags) * 1000)
    return max(lags)


def feeder(loop, items: asyncio.Queue, stats: dict, reports: list, args, stop, log) -> None:
    sent = 0  # this thread's own count, reported to main through `reports`
    while sent < args.items and not stop.is_set():
        time.sleep(args.feed_ms / 1000)  # the thread's own work: reading a device, parsing a file
        sent += 1
        item = (threading.current_thread().name, sent, time.perf_counter())
        # Wakes the loop and runs put_nowait *in the loop's thread*, the only one allowed to.
        loop.call_soon_threadsafe(items.put_nowait, item)
    # A question for the loop: the coroutine runs there; we block on a concurrent.futures.Future.
    future = asyncio.run_coroutine_threadsafe(consumed_so_far(stats), loop)
    log.info("sent %d items; loop says %d consumed", sent, future.result(timeout=ANSWER_TIMEOUT))
    reports.append(sent)  # list.append is atomic; main reads `reports` after joining us
    loop.call_soon_threadsafe(items.put_nowait, SENTINEL)


async def consumed_so_far(stats: dict) -> int:
    return stats["consumed"]  # read in the loop's thread, like every other use of `stats`


async def consume(items: asyncio.Queue, senders: int, stats: dict, log) -> None:
    for _ in range(senders):  # each feeder ends with one SENTINEL: done after the last of them
        while (item := await asyncio.wait_for(items.get(), GET_TIMEOUT)) is not SENTINEL:
            name, number, sent_at = item
            handoff = time.perf_counter() - sent_at
            stats["consumed"] += 1
            stats["max_handoff"] = max(stats["max_handoff"], handoff)
            log.info("got item %d from %s, handed over %.1f ms ago", number, name, handoff * 1000)


async def lesson(args, stop: threading.Event, log) -> dict:
    loop = asyncio.get_running_loop()
    # One executor thread per feeder join plus one for the blocking call; named for the log.
    loop.set_default_executor(ThreadPoolExecutor(args.feeders + 1, thread_name_prefix="Offload"))
    block_s, tick_s = args.block_ms / 1000, args.tick_ms / 1000
    blocking = await measure_lag("blocking", block_s, tick_s, log)
    offloaded = await measure_lag("offloaded", block_s, tick_s, log)
    items: asyncio.Queue = asyncio.Queue()  # unbounded: put_nowait in a callback never fails
    stats = {"consumed": 0, "max_handoff": 0.0}  # loop-owned: touched only by coroutines
    reports: list[int] = []  # one per feeder that got the loop's answer: the items it sent
    feeders = [threading.Thread(target=feeder, name=f"Feeder-{i}",
                                args=(loop, items, stats, reports, args, stop, log))
               for i in range(1, args.feeders + 1)]
    for thread in feeders:
        thread.start()
    await consume(items, len(feeders), stats, log)
    # Thread.join blocks, so it too goes to the executor instead of stalling the loop.
    await asyncio.gather(*(loop.run_in_executor(None, t.join, JOIN_TIMEOUT) for t in feeders))
    return {"max_lag_blocking_ms": round(blocking * 1000), "block_ms": args.block_ms,
            "max_lag_offloaded_ms": round(offloaded * 1000), "items_from_threads": sum(reports),
            "items_consumed": stats["consumed"], "answers": len(reports),
            "max_handoff_ms": round(stats["max_handoff"] * 1000, 1)}


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    stop = threading.Event()  # set by Ctrl-C; feeders check it before each item
    kit.cancel_on_interrupt(stop)
    try:
        result = asyncio.run(lesson(args, stop, log), debug=args.asyncio_debug)
    except TimeoutError:  # every wait above has a timeout: say which one ran out, in the log
        log.exception("a wait timed out: nobody answered in time (see Failure modes)")
        return 1
    kit.emit_result(**result)
    return 0 if result["items_from_threads"] == result["items_consumed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

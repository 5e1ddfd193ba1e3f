"""Threads and asyncio: crossing the border between an event loop and threads, both ways.

Problem:
    An asyncio event loop runs all its coroutines in one thread, switching only at ``await``, so
    one blocking call in a coroutine (``time.sleep``, a slow file read, a library with no async
    API) freezes them all. Blocking work goes out to a thread (``asyncio.to_thread``,
    ``loop.run_in_executor``); plain threads hand work back in (``loop.call_soon_threadsafe``,
    ``asyncio.run_coroutine_threadsafe``). A ticker coroutine measures how late the loop wakes it
    while a coroutine blocks the loop, then while the same call runs in a thread. Last, feeder
    threads fill an ``asyncio.Queue`` that a coroutine drains.

What to watch:
    "blocking for 250 ms" is logged by ``MainThread`` (the loop's thread) the first time and by
    ``Offload_0`` (an executor thread) the second; the ticker reports the first wake-up about 250 ms
    late, the second on time. Then ``Feeder-N`` threads hand items over and each asks the loop
    a question; every item is logged by ``MainThread``, where the consumer coroutine runs.

Expected output:
    ``max_lag_blocking_ms`` near ``--block-ms`` (about 230-250), ``max_lag_offloaded_ms`` a few
    ms, ``items_from_threads = items_consumed = 30``, ``answers = 3``, ``max_handoff_ms`` below 50.

Failure modes:
    ``time.sleep`` or ``requests.get`` inside a coroutine stalls the whole loop: use
    ``await asyncio.sleep`` or ``await asyncio.to_thread(...)``. asyncio objects (the loop, its
    queues, events and futures) are not thread-safe: from another thread, calling
    ``queue.put_nowait`` or ``loop.call_soon`` does not even wake the loop, so the item waits for
    someone else to. Only the ``*_threadsafe`` functions may cross. And ``.result()`` on the future
    of ``run_coroutine_threadsafe`` called *in the loop's thread* deadlocks: the loop waits for itself.

Exercises:
    1. Run with ``--block-ms 1000 --asyncio-debug``: the lag follows the block, and asyncio's debug
       mode names the culprit ("Executing <Task ...> took 1.0 seconds").
    2. In ``feeder``, replace ``loop.call_soon_threadsafe(items.put_nowait, item)`` with
       ``items.put_nowait(item)``: why does ``max_handoff_ms`` grow? Then add ``--asyncio-debug``:
       a feeder dies, and the consumer hangs despite its timeout (Ctrl-C twice). What broke?
    3. In ``consume``, ask the loop a question from its own thread: ``.result(timeout=2)`` on
       ``asyncio.run_coroutine_threadsafe(consumed_so_far(stats), asyncio.get_running_loop())``.
       Why does it always time out, and what would happen without the timeout?
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
    parser.add_argument("--block-ms", type=kit.int_range(50, 5000), default=250,
                        help="milliseconds of the blocking call: long enough to dwarf normal lag")
    parser.add_argument("--tick-ms", type=kit.int_range(1, 1000), default=20,
                        help="how often the ticker coroutine wants to wake up")
    parser.add_argument("--feeders", type=kit.int_range(1, 16), default=3,
                        help="plain threads handing items into the loop")
    parser.add_argument("--items", type=kit.int_range(1, 1000), default=10,
                        help="items each feeder hands over")
    parser.add_argument("--feed-ms", type=kit.int_range(0, 1000), default=20,
                        help="milliseconds a feeder works on one item before handing it over")
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


async def measure_lag(offload: bool, block_s: float, tick_s: float, log) -> float:
    done = asyncio.Event()  # set when the measurement is over; the ticker checks it each tick
    lags: list[float] = []
    tick = asyncio.create_task(ticker(tick_s, done, lags))
    await asyncio.sleep(SETTLE_TICKS * tick_s)
    if offload:
        await asyncio.to_thread(blocking_call, block_s, log)  # the loop keeps serving the ticker
    else:
        blocking_call(block_s, log)  # WRONG on purpose: no coroutine runs until this returns
    await asyncio.sleep(SETTLE_TICKS * tick_s)
    done.set()
    await asyncio.wait_for(tick, timeout=tick_s + 1)  # the ticker ends within one tick
    worst = max(lags)
    log.info("%s: the ticker woke up at most %.0f ms late", "offloaded" if offload else "blocking",
             worst * 1000)
    return worst


def feeder(loop, items: asyncio.Queue, stats: dict, count: int, feed_s: float, reports: list,
           stop: threading.Event, log) -> None:
    sent = 0  # this thread's own count, reported to main through `reports`
    for number in range(1, count + 1):
        if stop.is_set():
            break
        time.sleep(feed_s)  # stands for the thread's own work: reading a device, parsing a file
        item = (threading.current_thread().name, number, time.perf_counter())
        # Wakes the loop and runs put_nowait *in the loop's thread*, the only one allowed to.
        loop.call_soon_threadsafe(items.put_nowait, item)
        sent += 1
    # A question for the loop: the coroutine runs there; we block on a concurrent.futures.Future.
    future = asyncio.run_coroutine_threadsafe(consumed_so_far(stats), loop)
    log.info("sent %d items; the loop says %d consumed so far", sent,
             future.result(timeout=ANSWER_TIMEOUT))
    reports.append(sent)  # list.append is atomic; main reads `reports` after joining us
    loop.call_soon_threadsafe(items.put_nowait, SENTINEL)


async def consumed_so_far(stats: dict) -> int:
    return stats["consumed"]  # read in the loop's thread, like every other use of `stats`


async def consume(items: asyncio.Queue, senders: int, stats: dict, log) -> None:
    finished = 0
    while finished < senders:
        item = await asyncio.wait_for(items.get(), GET_TIMEOUT)
        if item is SENTINEL:
            finished += 1
            continue
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
    blocking = await measure_lag(False, block_s, tick_s, log)
    offloaded = await measure_lag(True, block_s, tick_s, log)

    items: asyncio.Queue = asyncio.Queue()  # unbounded: put_nowait in a callback never fails
    stats = {"consumed": 0, "max_handoff": 0.0}  # loop-owned: touched only by coroutines
    reports: list[int] = []  # one per feeder that got the loop's answer: the items it sent
    feeders = [threading.Thread(target=feeder, name=f"Feeder-{i}",
                                args=(loop, items, stats, args.items, args.feed_ms / 1000,
                                      reports, stop, log))
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
    result = asyncio.run(lesson(args, stop, log), debug=args.asyncio_debug)
    kit.emit_result(**result)
    return 0 if result["items_from_threads"] == result["items_consumed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
